#!/usr/bin/python3
"""Runs embedding_bench and writes bench/results/embedding_throughput.{md,csv,png}.

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
    colors = ["#888888" if n.startswith("random gather") else "#c0392b" for n in names]  # the limit grey
    bars = ax.barh(names[::-1], rates[::-1], color=colors[::-1])
    for bar, r in zip(bars, [float(x["ratio_to_limit"]) for x in rows][::-1]):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {r:.2f}x", va="center")
    ax.set_xlabel("million rows / s")
    ax.set_title(f"{a.rows} rows x {a.dim}: rows/s and fraction of the random-gather limit")
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "embedding_throughput.png"), dpi=110)

if __name__ == "__main__":
    main()
