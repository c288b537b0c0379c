#!/usr/bin/python3
"""Session recommendation on synthetic sessions: M2TRec (metadata only), M2TRec with a hashed
item-id attribute (the hybrid), and the SASRec-style ID baseline; Recall@20 / MRR@20 overall, on
cold targets (items unseen in training) and on rare ones, and the embedding memory each holds.
Also the Diginetica sample when ../shared/data has it. Writes bench/results/sessions.{csv,md,png}.

    /usr/bin/python3 bench/sessions.py [--build build] [--sessions 20000] [--items 5000] [--epochs 5]
"""
import argparse
import json
import os
import subprocess

import benchlib

HERE = os.path.dirname(os.path.abspath(__file__))
DIGI = os.path.join(HERE, "..", "..", "shared", "data", "diginetica")

RUNS = [  # label, data, --set overrides
    ("M2TRec (metadata only)", "synthetic", ['model.name="m2trec"', "embedding.dim=16"]),
    ("M2TRec + hashed item id", "synthetic", ['model.name="m2trec"', "embedding.dim=16", "data.item_id_attribute=true",
                                              'embedding.method="unified"', "embedding.rows=4096",
                                              "embedding.collisionless_below=1000"]),
    ("SASRec-style ID baseline", "synthetic", ['model.name="sasrec"', "embedding.dim=64"]),
    ("M2TRec (category only)", "diginetica", ['model.name="m2trec"', "embedding.dim=32"]),
    ("M2TRec + item id", "diginetica", ['model.name="m2trec"', "embedding.dim=32", "data.item_id_attribute=true"]),
    ("SASRec-style ID baseline", "diginetica", ['model.name="sasrec"', "embedding.dim=64"]),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--sessions", type=int, default=20000)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--data", default="bench/results/sessions-data")
    ap.add_argument("--out", default="bench/results")
    a = ap.parse_args()
    ember = os.path.join(a.build, "launcher", "ember")
    os.makedirs(a.data, exist_ok=True)
    log, items = os.path.join(a.data, f"sessions-{a.sessions}.tsv"), os.path.join(a.data, f"items-{a.items}.tsv")
    if not os.path.exists(log):
        subprocess.run([ember, "datagen", "sessions", "--sessions", str(a.sessions), "--items", str(a.items), "--out",
                        log, "--items-out", items], check=True, stdout=subprocess.DEVNULL)
    sources = {"synthetic": ['data.format="yoochoose"', f'data.train="{log}"', f'data.items="{items}"']}
    if os.path.exists(os.path.join(DIGI, "sample_train-item-views.csv")):
        sources["diginetica"] = ['data.format="diginetica"',
                                 f'data.train="{os.path.join(DIGI, "sample_train-item-views.csv")}"',
                                 f'data.items="{os.path.join(DIGI, "product-categories.csv")}"']
    rows = []
    for label, source, sets in RUNS:
        if source not in sources:
            continue
        metrics = os.path.join(a.data, f"{source}-{len(rows)}.json")
        cmd = [ember, "train", "--config", os.path.join(HERE, "..", "examples", "sessions_m2trec.toml")]
        for s in sources[source] + sets + [f"train.epochs={a.epochs}", 'train.progress="off"']:
            cmd += ["--set", s]
        out = subprocess.run(cmd + ["--metrics-json", metrics], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stdout, out.stderr)
            raise SystemExit(f"{label} on {source} failed")
        m = json.load(open(metrics))
        rows.append({"data": source, "model": label, "recall_at_20": m["recall_at_20"], "mrr_at_20": m["mrr_at_20"],
                     "cold_recall_at_20": m["cold_recall_at_20"], "cold_mrr_at_20": m["cold_mrr_at_20"],
                     "rare_recall_at_20": m["rare_recall_at_20"], "rare_mrr_at_20": m["rare_mrr_at_20"],
                     "test_examples": m["test_examples"], "cold_examples": m["cold_examples"],
                     "rare_examples": m["rare_examples"], "param_bytes": m["param_bytes"],
                     "examples_per_sec": m["samples_per_sec"], "best_epoch": m["best_epoch"]})
        print(rows[-1], flush=True)
    benchlib.write_csv(os.path.join(a.out, "sessions.csv"), rows)
    pct = lambda x: f"{100 * x:.2f}"  # noqa: E731
    with open(os.path.join(a.out, "sessions.md"), "w") as f:
        f.write(f"# Session recommendation: Recall@20 / MRR@20 (x100), epoch chosen on validation\n\n"
                f"synthetic: `ember datagen sessions --sessions {a.sessions} --items {a.items}` (cold items appear only "
                f"in the last 7 days, the test split); diginetica: the 12k-click sample with product categories. "
                f"{a.epochs} epochs, batch 100, full softmax.\n\n")
        f.write("| data | model | Recall@20 | MRR@20 | cold Recall@20 | cold MRR@20 | rare Recall@20 | rare MRR@20 | "
                "test / cold / rare examples | embedding params | examples/s |\n")
        f.write("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|\n")
        for r in rows:
            f.write(f"| {r['data']} | {r['model']} | {pct(r['recall_at_20'])} | {pct(r['mrr_at_20'])} | "
                    f"{pct(r['cold_recall_at_20'])} | {pct(r['cold_mrr_at_20'])} | {pct(r['rare_recall_at_20'])} | "
                    f"{pct(r['rare_mrr_at_20'])} | {r['test_examples']} / {r['cold_examples']} / {r['rare_examples']} | "
                    f"{r['param_bytes'] / 1024:.1f} KiB | {r['examples_per_sec']:.0f} |\n")
    print(open(os.path.join(a.out, "sessions.md")).read())
    plt = benchlib.pyplot()
    syn = [r for r in rows if r["data"] == "synthetic"]
    if plt and syn:
        fig, ax = plt.subplots(figsize=(8, 4))
        groups = [("recall_at_20", "overall"), ("cold_recall_at_20", "cold items"), ("rare_recall_at_20", "rare items")]
        width = 0.8 / len(syn)
        for i, r in enumerate(syn):
            ax.bar([g + i * width for g in range(len(groups))], [100 * r[k] for k, _ in groups], width, label=r["model"])
        ax.set_xticks([g + width * (len(syn) - 1) / 2 for g in range(len(groups))], [n for _, n in groups])
        ax.set_ylabel("Recall@20 (%)")
        ax.set_title("Synthetic sessions: Recall@20 by target kind")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "sessions.png"), dpi=110)


if __name__ == "__main__":
    main()
