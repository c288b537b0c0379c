#!/usr/bin/python3
"""The linear reference: scikit-learn L2 logistic regression on hashed one-hot features.

Reads Criteo-format TSV (label, 13 integer columns, 26 categorical ids; empty cells allowed),
one-hot encodes every (field, value) pair into 2^hash_bits hashed columns and every integer
column as log1p(max(x, 0)) (empty = 0) plus a "missing" indicator, then fits
sklearn.linear_model.LogisticRegression for each C of a grid, chooses C on the validation file's
log loss and reports that model's test AUC and log loss. Printed as one JSON line (and written to
--out), so a benchmark can put it beside ember's figures from the same run.

    /usr/bin/python3 bench/linear_reference.py --train T.tsv --valid V.tsv --test X.tsv [--out R.json]

Needs Debian's python3-sklearn (scikit-learn 1.2).
"""
import argparse
import json
import math
import sys
import time

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

NUM_DENSE = 13
NUM_SPARSE = 26


def fnv1a(text):
    h = 0xcbf29ce484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def load(path, hash_bits, max_rows):
    """(X [n, 2*NUM_DENSE + 2^hash_bits] CSR, y [n])."""
    width = 1 << hash_bits
    cache = {}
    labels, indptr, indices, values = [], [0], [], []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if max_rows and len(labels) >= max_rows:
                break
            cols = line.rstrip("\n").split("\t")
            if len(cols) != 1 + NUM_DENSE + NUM_SPARSE:
                sys.exit(f"{path}:{lineno}: expected {1 + NUM_DENSE + NUM_SPARSE} columns, got {len(cols)}")
            labels.append(int(cols[0]))
            for j in range(NUM_DENSE):
                cell = cols[1 + j]
                if cell == "":
                    indices.append(NUM_DENSE + j)
                    values.append(1.0)
                else:
                    indices.append(j)
                    values.append(math.log1p(max(float(cell), 0.0)))
            for j in range(NUM_SPARSE):
                key = (j, cols[1 + NUM_DENSE + j])
                col = cache.get(key)
                if col is None:
                    col = 2 * NUM_DENSE + fnv1a(f"{j}:{key[1]}") % width
                    cache[key] = col
                indices.append(col)
                values.append(1.0)
            indptr.append(len(indices))
    x = sparse.csr_matrix((np.asarray(values, dtype=np.float64), np.asarray(indices), np.asarray(indptr)),
                          shape=(len(labels), 2 * NUM_DENSE + width))
    x.sum_duplicates()
    return x, np.asarray(labels)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--valid", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--max-rows", type=int, default=0, help="training rows read (0 = all)")
    ap.add_argument("--hash-bits", type=int, default=22)
    ap.add_argument("--grid", default="0.03,0.1,0.3,1,3", help="values of C (inverse L2 strength)")
    ap.add_argument("--out", help="also write the JSON result here")
    args = ap.parse_args()

    t0 = time.time()
    xtr, ytr = load(args.train, args.hash_bits, args.max_rows)
    xva, yva = load(args.valid, args.hash_bits, 0)
    xte, yte = load(args.test, args.hash_bits, 0)
    load_s = time.time() - t0
    tried = []
    best = None
    for c in [float(v) for v in args.grid.split(",")]:
        t1 = time.time()
        model = LogisticRegression(C=c, solver="liblinear", max_iter=200)
        model.fit(xtr, ytr)
        pva = model.predict_proba(xva)[:, 1]
        entry = {"C": c, "valid_auc": roc_auc_score(yva, pva), "valid_logloss": log_loss(yva, pva),
                 "fit_s": round(time.time() - t1, 1)}
        tried.append(entry)
        print(f"C={c}: validation AUC {entry['valid_auc']:.5f}, log loss {entry['valid_logloss']:.5f} "
              f"({entry['fit_s']} s)", file=sys.stderr)
        if best is None or entry["valid_logloss"] < best[0]["valid_logloss"]:
            best = (entry, model)
    pte = best[1].predict_proba(xte)[:, 1]
    result = {"model": "sklearn LogisticRegression (L2, liblinear) on hashed one-hot",
              "train_rows": int(xtr.shape[0]), "valid_rows": int(xva.shape[0]), "test_rows": int(xte.shape[0]),
              "hash_bits": args.hash_bits, "C": best[0]["C"], "valid_auc": best[0]["valid_auc"],
              "auc": roc_auc_score(yte, pte), "logloss": log_loss(yte, pte), "grid": tried,
              "load_s": round(load_s, 1)}
    print(json.dumps(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
