#!/usr/bin/python3
"""Runs embedding_bench and writes bench/results/embedding_throughput.{md,csv,png}, then measures
full tables' memory (one process per table: 1M and 4M rows, SGD, row-wise Adagrad and Adam) into
bench/results/embedding_memory.{md,csv}.

    python3 bench/embedding_throughput.py [--build build] [--rows 4000000] [--seconds 2]
"""
import argparse
import csv
import os
import subprocess
import sys

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rows", default="4000000")
    ap.add_argument("--dim", default="16")
    ap.add_argument("--seconds", default="2")
    ap.add_argument("--out", default="bench/results")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    csv_path = os.path.join(a.out, "embedding_throughput.csv")
    md = subprocess.run([os.path.join(a.build, "bench", "embedding_bench"), "--rows", a.rows, "--dim", a.dim,
                         "--seconds", a.seconds, "--csv", csv_path], check=True, capture_output=True, text=True).stdout
    with open(os.path.join(a.out, "embedding_throughput.md"), "w") as f:
        f.write(md)
    print(md)
    memory(a)
    rows = list(csv.DictReader(open(csv_path)))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib absent: no plot", file=sys.stderr)
        return
    names = [r["operation"] for r in rows]
    rates = [float(r["rows_per_sec"]) / 1e6 for r in rows]
    fig, ax = plt.subplots(figsize=(9, 4))
    colors = ["#888888" if n.startswith(("random gather", "two random")) else "#c0392b" for n in names]  # the limit grey
    bars = ax.barh(names[::-1], rates[::-1], color=colors[::-1])
    for bar, r in zip(bars, [float(x["ratio_to_limit"]) for x in rows][::-1]):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {r:.2f}x", va="center")
    ax.set_xlabel("million rows / s")
    ax.set_title(f"{a.rows} rows x {a.dim}: rows/s and fraction of the random-gather limit")
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "embedding_throughput.png"), dpi=110)

MEMORY_FIELDS = ["optimizer", "rows", "dim", "payload", "store", "resident", "weights", "state", "keys", "index",
                 "other"]


def memory(a):
    """Resident bytes of full tables against what their rows hold (weights + optimizer state)."""
    results = []
    for opt in ("sgd", "rowwise_adagrad", "adam"):
        for rows in ("1000000", "4000000"):
            line = subprocess.run([os.path.join(a.build, "bench", "embedding_bench"), "--memory", opt, "--rows", rows,
                                   "--dim", a.dim], check=True, capture_output=True, text=True).stdout.strip()
            results.append(dict(zip(MEMORY_FIELDS, line.split(","))))
    with open(os.path.join(a.out, "embedding_memory.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=MEMORY_FIELDS)
        w.writeheader()
        w.writerows(results)
    md = ["| optimizer | rows | weights + state | resident | resident / (weights + state) | bytes per row: weights | "
          "state | key | index | other |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    mib = 1 << 20
    for r in results:
        n = int(r["rows"])
        per = [int(r[k]) / n for k in ("weights", "state", "keys", "index", "other")]
        md.append(f"| {r['optimizer']} | {n:,} | {int(r['payload']) / mib:.1f} MiB | {int(r['resident']) / mib:.1f} MiB | "
                  f"{int(r['resident']) / int(r['payload']):.3f} | " + " | ".join(f"{x:.2f}" for x in per) + " |")
    text = "\n".join(md) + "\n"
    with open(os.path.join(a.out, "embedding_memory.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
