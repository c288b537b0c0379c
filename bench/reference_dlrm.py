#!/usr/bin/python3
"""The PyTorch reference of ember's DLRM (issue: performance), for same-machine comparisons.

The same architecture as models/ctr_model.cc (bottom MLP to dim, pairwise dot interaction of the
bottom output and the field embeddings, top MLP), one nn.EmbeddingBag per field with sparse
gradients and element-wise Adagrad (ember: embedding.optimizer = "adagrad"), Adam on the dense
parameters, the same Criteo-format data and transforms (dense log(1 + max(x, 0)), hex ids; ids are
numbered per field in a pass before the clock starts, which ember does inside its timed loop).

    /usr/bin/python3 bench/reference_dlrm.py --train T --test T [--batch 512] [--threads 2]

Prints one JSON line: samples_per_sec (training loop only), train_seconds, auc, logloss.
"""
import argparse
import json
import math
import time

import numpy as np
import torch


def load(path, num_dense, num_sparse, vocabs, grow):
    labels, dense, sparse = [], [], []
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").rstrip("\r").split("\t")
            labels.append(float(p[0]))
            dense.append([math.log1p(max(int(x), 0)) if x else 0.0 for x in p[1:1 + num_dense]])
            row = []
            for j, x in enumerate(p[1 + num_dense:1 + num_dense + num_sparse]):
                v = vocabs[j]
                idx = v.get(x)
                if idx is None:
                    idx = len(v) if grow else 0  # unseen at test: row 0 (ember reads an initial value)
                    if grow:
                        v[x] = idx
                row.append(idx)
            sparse.append(row)
    return (torch.tensor(labels), torch.tensor(dense, dtype=torch.float32),
            torch.tensor(sparse, dtype=torch.long))


class Dlrm(torch.nn.Module):
    def __init__(self, num_dense, vocab_sizes, dim, bottom, top):
        super().__init__()

        def mlp(inp, widths, relu_last):
            layers = []
            for i, w in enumerate(widths):
                layers.append(torch.nn.Linear(inp, w))
                if i + 1 < len(widths) or relu_last:
                    layers.append(torch.nn.ReLU())
                inp = w
            return torch.nn.Sequential(*layers)

        self.bottom = mlp(num_dense, bottom + [dim], True)
        self.emb = torch.nn.ModuleList(torch.nn.EmbeddingBag(max(1, n), dim, mode="sum", sparse=True)
                                       for n in vocab_sizes)
        for e in self.emb:
            torch.nn.init.uniform_(e.weight, -0.01, 0.01)  # ember's embedding.init_scale
        f = len(vocab_sizes) + 1
        self.register_buffer("tri", torch.tensor([i * f + j for i in range(f) for j in range(i)], dtype=torch.long))
        self.top = mlp(dim + len(self.tri), top + [1], False)

    def forward(self, dense, sparse):
        x = self.bottom(dense)
        b = dense.shape[0]
        offsets = torch.arange(b, dtype=torch.long)
        e = torch.stack([emb(sparse[:, j], offsets) for j, emb in enumerate(self.emb)], 1)
        t = torch.cat([x.unsqueeze(1), e], 1)
        z = torch.bmm(t, t.transpose(1, 2)).reshape(b, -1).index_select(1, self.tri)
        return self.top(torch.cat([x, z], 1)).squeeze(1)


def auc(labels, scores):
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    # Average ranks over ties.
    s = scores[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        if j > i:
            ranks[order[i:j + 1]] = (i + j + 2) / 2.0
        i = j + 1
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / max(1, n_pos * n_neg))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--bottom", default="64,16")
    ap.add_argument("--top", default="64,32")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--emb-lr", type=float, default=0.05)
    ap.add_argument("--dense", type=int, default=13)
    ap.add_argument("--sparse", type=int, default=26)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    vocabs = [dict() for _ in range(a.sparse)]
    y, xd, xs = load(a.train, a.dense, a.sparse, vocabs, True)
    ty, txd, txs = load(a.test, a.dense, a.sparse, vocabs, False)
    model = Dlrm(a.dense, [len(v) for v in vocabs], a.dim, [int(w) for w in a.bottom.split(",") if w],
                 [int(w) for w in a.top.split(",") if w])
    emb_params = [p for n, p in model.named_parameters() if n.startswith("emb.")]
    dense_params = [p for n, p in model.named_parameters() if not n.startswith("emb.")]
    opt_emb = torch.optim.Adagrad(emb_params, lr=a.emb_lr)
    opt_dense = torch.optim.Adam(dense_params, lr=a.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    n = len(y)
    start = time.perf_counter()
    for i in range(0, n, a.batch):
        logits = model(xd[i:i + a.batch], xs[i:i + a.batch])
        loss = loss_fn(logits, y[i:i + a.batch])
        opt_emb.zero_grad()
        opt_dense.zero_grad()
        loss.backward()
        opt_emb.step()
        opt_dense.step()
    secs = time.perf_counter() - start
    with torch.no_grad():
        scores = torch.cat([torch.sigmoid(model(txd[i:i + 8192], txs[i:i + 8192])) for i in range(0, len(ty), 8192)])
    s = scores.numpy().astype(np.float64)
    t = ty.numpy()
    eps = 1e-7
    logloss = float(-np.mean(t * np.log(np.clip(s, eps, 1)) + (1 - t) * np.log(np.clip(1 - s, eps, 1))))
    print(json.dumps({"samples": n, "train_seconds": secs, "samples_per_sec": n / secs, "auc": auc(t, s),
                      "logloss": logloss, "batch": a.batch, "threads": a.threads}))


if __name__ == "__main__":
    main()
