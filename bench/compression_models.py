#!/usr/bin/python3
"""Compression where the tail matters, for every CTR model: test AUC of each embedding method at
each budget, from bench/compression.py's per-model results on the long-tail teacher.

Reads bench/results/compression-longtail-<model>.csv (DLRM: compression-longtail.csv), as
`bench/compression.py --teacher longtail --model <model>` writes them, and writes
bench/results/compression-models.md (one table: model and method by budget, the best method at
each budget in bold) and compression-models.png (AUC against the budget, one panel per model).

    /usr/bin/python3 bench/compression_models.py [--results bench/results] [--models dlrm,deepfm,...]
"""
import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

BUDGETS = ["1", "1/10", "1/100", "1/1000"]
# full under a budget: the most frequent values of the training file that fit, the others one
# out-of-vocabulary row per field.
METHODS = ["full", "hash", "unified", "optembed", "dsl"]


def load(results, model):
    path = os.path.join(results, "compression-longtail.csv" if model == "dlrm" else f"compression-longtail-{model}.csv")
    if not os.path.exists(path):
        return None
    out = {}
    for r in csv.DictReader(open(path)):
        if r["auc"]:
            out[(r["method"], r["budget"])] = float(r["auc"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="bench/results")
    ap.add_argument("--models", default="dlrm,deepfm,dcn_v2,wide_deep,fm,lr")
    a = ap.parse_args()
    models = [m for m in a.models.split(",") if load(a.results, m) is not None]
    md = ["# Compression on the long-tail teacher, every model", "",
          "Test AUC, one epoch, dim 16, 300k training rows; the budget covers every embedding group (the "
          "first-order weights included: every model's but those of a dlrm or dcn_v2 run with model.first_order = "
          "false). Bold: the best method at that budget.", "",
          "| model | method | " + " | ".join(BUDGETS) + " |", "|---|---|" + "---:|" * len(BUDGETS)]
    for model in models:
        r = load(a.results, model)
        best = {b: max((r[(m, b)] for m in METHODS if (m, b) in r), default=None) for b in BUDGETS}
        for m in METHODS:
            cells = []
            for b in BUDGETS:
                v = r.get((m, b))
                cells.append("–" if v is None else (f"**{v:.4f}**" if v == best[b] else f"{v:.4f}"))
            md.append(f"| {model} | {m} | " + " | ".join(cells) + " |")
    with open(os.path.join(a.results, "compression-models.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    plt = benchlib.pyplot()
    if plt and models:
        cols = 3
        rows = (len(models) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
        xs = [1, 0.1, 0.01, 0.001]
        for i, model in enumerate(models):
            ax = axes[i // cols][i % cols]
            r = load(a.results, model)
            for m in METHODS:
                pts = [(x, r[(m, b)]) for x, b in zip(xs, BUDGETS) if (m, b) in r]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                            label="full (most frequent values)" if m == "full" else m)
            if ("full", "1") in r:
                ax.axhline(r[("full", "1")], color="k", linestyle=":", label="full table")
            ax.set_xscale("log")
            ax.invert_xaxis()
            ax.set_title(model)
            ax.set_xlabel("budget (fraction of the full tables)")
            ax.set_ylabel("test AUC")
            if i == 0:
                ax.legend(fontsize=8)
        for j in range(len(models), rows * cols):
            axes[j // cols][j % cols].axis("off")
        fig.suptitle("long-tail teacher: test AUC against embedding memory")
        fig.tight_layout()
        fig.savefig(os.path.join(a.results, "compression-models.png"), dpi=110)


if __name__ == "__main__":
    main()
