#!/usr/bin/python3
"""End-to-end training throughput and AUC: one process against 2 PS servers + 2 workers
(`mpirun -np 4`) on this machine, with the same global batch.

    python3 bench/cluster.py [--build build] [--data FILE] [--test FILE] [--rows 300000] [--reps 2]

The demo's DLRM (examples/synthetic_dlrm.toml, full tables) trains --rows examples, alternating
one-process and cluster runs --reps times; samples/s from --metrics-json (training time; the
cluster's is the workers' total). On 2 cores the 4 ranks share the machine, so this measures the
protocol's cost, not a speed-up. Writes bench/results/cluster.{md,csv}.
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
    runs = []
    for r in range(a.reps):
        for mpi in (False, True) if r % 2 == 0 else (True, False):
            batch = a.batch // 2 if mpi else a.batch
            m = train(ember, common + ["--set", f"train.batch_size={batch}"], metrics, mpi)
            runs.append({"rep": r, "setup": "2 servers + 2 workers" if mpi else "one process",
                         "samples_per_sec": m["samples_per_sec"], "auc": m["auc"]})
            print(f"rep {r} {runs[-1]['setup']:22s}: {m['samples_per_sec']:8.0f} samples/s, AUC {m['auc']:.5f}",
                  flush=True)
    write_csv(os.path.join(a.out, "cluster.csv"), runs)
    md = ["# One process against 2 PS servers + 2 workers (mpirun -np 4, one 2-core machine)", "",
          f"DLRM (demo model, full tables), {a.rows} training examples, global batch {a.batch}.", "",
          "| rep | setup | samples/s | test AUC |", "|---|---|---|---|"]
    md += [f"| {r['rep']} | {r['setup']} | {r['samples_per_sec']:.0f} | {r['auc']:.5f} |" for r in runs]
    one = [r for r in runs if r["setup"] == "one process"]
    four = [r for r in runs if r["setup"] != "one process"]
    md += ["", f"mean samples/s: one process {sum(r['samples_per_sec'] for r in one) / len(one):.0f}, cluster "
           f"{sum(r['samples_per_sec'] for r in four) / len(four):.0f}; AUC difference "
           f"{abs(one[0]['auc'] - four[0]['auc']):.5f}.", ""]
    open(os.path.join(a.out, "cluster.md"), "w").write("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
