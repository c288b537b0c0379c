#!/usr/bin/python3
"""End-to-end training throughput and AUC: one process against 2 PS servers + 2 workers
(`mpirun -np 4`) on this machine, with the same global batch, in each training mode.

    python3 bench/cluster.py [--build build] [--data FILE] [--test FILE] [--rows 300000] [--reps 2]

The demo's DLRM (examples/synthetic_dlrm.toml, full tables) trains --rows examples. Setups: one
process with and without prefetching the next batch's rows, and the cluster in sync (with and
without prefetch), bounded (staleness 1) and async modes; their order is rotated each rep.
samples/s from --metrics-json (training time; the cluster's is the workers' total). On 2 cores
the 4 ranks share the machine, so this measures the protocol's cost, not a speed-up. Writes
bench/results/cluster.{md,csv,png}.
"""
import argparse
import json
import os
import subprocess

from benchlib import datagen, write_csv


def train(ember, args, metrics, mpi):
    cmd = (["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "4"] if mpi else []) + [
        ember, "train", "--config", "examples/synthetic_dlrm.toml", "--metrics-json", metrics] + args
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.load(open(metrics))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--data", default="")
    ap.add_argument("--test", default="")
    ap.add_argument("--rows", type=int, default=300000)
    ap.add_argument("--batch", type=int, default=1024, help="global batch")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default="bench/results")
    a = ap.parse_args()
    ember = os.path.join(a.build, "launcher", "ember")
    os.makedirs(a.out, exist_ok=True)
    data, test = a.data, a.test
    if not data:
        data, test = os.path.join(a.out, "cluster-train.tsv"), os.path.join(a.out, "cluster-test.tsv")
        datagen(ember, data, a.rows, 1)
        datagen(ember, test, 50000, 2)
    common = ["--set", f"data.train={data}", "--set", f"data.test={test}", "--set", f"data.max_rows={a.rows}",
              "--set", "train.progress=off", "--set", "ps.shards=2", "--set", "ps.servers=2"]
    metrics = os.path.join(a.out, "cluster-run.json")
    setups = [("one process", False, []),
              ("one process, no prefetch", False, ["--set", "train.prefetch=false"]),
              ("2+2 sync", True, []),
              ("2+2 sync, no prefetch", True, ["--set", "train.prefetch=false"]),
              ("2+2 bounded(1)", True, ["--set", 'train.mode="bounded"', "--set", "train.staleness=1"]),
              ("2+2 async", True, ["--set", 'train.mode="async"'])]
    runs = []
    for r in range(a.reps):
        for k in range(len(setups)):
            name, mpi, extra = setups[(k + r) % len(setups)]
            batch = a.batch // 2 if mpi else a.batch
            m = train(ember, common + ["--set", f"train.batch_size={batch}"] + extra, metrics, mpi)
            runs.append({"rep": r, "setup": name, "samples_per_sec": m["samples_per_sec"], "auc": m["auc"]})
            print(f"rep {r} {name:26s}: {m['samples_per_sec']:8.0f} samples/s, AUC {m['auc']:.5f}", flush=True)
    write_csv(os.path.join(a.out, "cluster.csv"), runs)
    base = [r["samples_per_sec"] for r in runs if r["setup"] == "one process"]
    base_mean = sum(base) / len(base)
    md = ["# One process against 2 PS servers + 2 workers (mpirun -np 4, one 2-core machine)", "",
          f"DLRM (demo model, full tables), {a.rows} training examples, global batch {a.batch}; "
          f"{a.reps} reps, setups in rotated order.", "",
          "| setup | samples/s (each rep) | mean / one process | test AUC (each rep) |", "|---|---|---|---|"]
    summary = []
    for name, _, _ in setups:
        mine = [r for r in runs if r["setup"] == name]
        mean = sum(r["samples_per_sec"] for r in mine) / len(mine)
        summary.append((name, mean, mine[0]["auc"]))
        speeds = ", ".join(f"{r['samples_per_sec']:.0f}" for r in mine)
        aucs = ", ".join(f"{r['auc']:.5f}" for r in mine)
        md.append(f"| {name} | {speeds} | {mean / base_mean:.2f} | {aucs} |")
    open(os.path.join(a.out, "cluster.md"), "w").write("\n".join(md) + "\n")
    print("\n".join(md))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
        names = [n.replace(", ", "\n") for n, _, _ in summary]
        ax.bar(names, [m for _, m, _ in summary])
        ax.set_ylabel("samples/s (mean)")
        ax.set_title("training throughput")
        bx.bar(names, [u for _, _, u in summary])
        bx.set_ylim(min(u for _, _, u in summary) - 0.005, max(u for _, _, u in summary) + 0.002)
        bx.set_ylabel("test AUC")
        bx.set_title("test AUC (first rep)")
        for x in (ax, bx):
            x.tick_params(axis="x", labelsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "cluster.png"), dpi=120)
    except ImportError:
        print("matplotlib missing: no plot")


if __name__ == "__main__":
    main()
