#!/usr/bin/python3
"""Exported models against their checkpoints: test AUC and file size per method and precision.

    python3 bench/export_parity.py [--build build] [--data DIR] [--rows 300000]

For every table kind (full, hash, unified, DSL, OptEmbed retrained, fp16 training rows, DeepFM's
two groups) trains DLRM on `ember datagen ctr` data with a checkpoint, scores the checkpoint on
the test set (`ember eval`), exports it at fp32, fp16 and int8 and scores each export the same
way. Writes bench/results/export_parity.{md,csv}: |AUC(export) - AUC(checkpoint)| against the
bounds 1e-6 / 5e-4 / 2e-3, file sizes, and the sizes `ember export` printed.
"""
import argparse
import json
import os
import re
import subprocess

from benchlib import datagen, write_csv

METHODS = [
    ("full", ["embedding.method=full"]),
    ("hash 1/10", ["embedding.method=hash", "embedding.budget=0.1"]),
    ("unified 1/10", ["embedding.method=unified", "embedding.budget=0.1"]),
    ("dsl 0.5", ["embedding.method=dsl", "embedding.density=0.5"]),
    ("optembed 1/4", ["embedding.method=optembed", "embedding.budget=0.25", "optembed.rounds=5"]),
    ("full, fp16 rows", ["embedding.method=full", "embedding.precision=fp16"]),
    ("deepfm hash 1/10", ["model.name=deepfm", "embedding.method=hash", "embedding.budget=0.1"]),
]
BOUNDS = {"fp32": 1e-6, "fp16": 5e-4, "int8": 2e-3}


def auc(ember, what, path, data, out):
    """Full-precision test AUC of a checkpoint or export (ember eval --metrics-json)."""
    metrics = os.path.join(out, "eval.json")
    subprocess.run([ember, "eval", what, path, "--data", data, "--metrics-json", metrics], check=True,
                   stdout=subprocess.DEVNULL)
    return json.load(open(metrics))["auc"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--data", default="bench/results/export-data")
    ap.add_argument("--rows", type=int, default=300000)
    ap.add_argument("--out", default="bench/results")
    a = ap.parse_args()
    ember = os.path.join(a.build, "launcher", "ember")
    os.makedirs(a.data, exist_ok=True)
    files = {}
    for name, rows, seed in (("train", a.rows, 1), ("valid", 50000, 3), ("test", 100000, 2)):
        files[name] = datagen(ember, os.path.join(a.data, name + ".tsv"), rows, seed)
    results = []
    for label, sets in METHODS:
        tag = re.sub(r"[^a-z0-9]+", "-", label)
        ckpt = os.path.join(a.data, "ckpt-" + tag)
        cmd = [ember, "train", "--config", "examples/synthetic_dlrm.toml", "--set", f"data.train={files['train']}",
               "--set", f"data.valid={files['valid']}", "--set", "data.test=", "--set", f"checkpoint.dir={ckpt}",
               "--set", "train.progress=off"]
        for s in sets:
            cmd += ["--set", s]
        subprocess.run(["rm", "-rf", ckpt], check=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        ref = auc(ember, "--checkpoint", ckpt, files["test"], a.data)
        for precision in ("fp32", "fp16", "int8"):
            model = os.path.join(a.data, f"{tag}-{precision}.embx")
            printed = subprocess.run([ember, "export", "--checkpoint", ckpt, "--out", model, "--precision", precision],
                                     check=True, stdout=subprocess.PIPE, text=True).stdout
            reported = int(re.search(r"^file (\d+) bytes", printed, re.M).group(1))
            plan = re.search(r"(\S+ \S+) promised by the plan", printed).group(1)
            got = auc(ember, "--model", model, files["test"], a.data)
            r = {"method": label, "precision": precision, "checkpoint_auc": ref, "export_auc": got,
                 "abs_diff": abs(got - ref), "bound": BOUNDS[precision], "within": abs(got - ref) <= BOUNDS[precision],
                 "file_bytes": os.path.getsize(model), "reported_bytes": reported, "plan_params": plan}
            results.append(r)
            print(f"{label:18s} {precision}: checkpoint AUC {ref:.6f}, export {got:.6f}, |diff| {r['abs_diff']:.1e} "
                  f"(bound {r['bound']:.0e}), {r['file_bytes']} bytes (printed {reported}), plan params {plan}",
                  flush=True)
    write_csv(os.path.join(a.out, "export_parity.csv"), results)
    md = ["# Exported models against their checkpoints", "",
          f"DLRM (demo model), {a.rows} training rows, 100000 test rows, `ember datagen ctr`; AUCs from "
          "`ember eval --metrics-json` (full precision).", "",
          "| method | rows | checkpoint AUC | export AUC | abs. diff | bound | file | printed size | plan (params) |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        md.append(f"| {r['method']} | {r['precision']} | {r['checkpoint_auc']:.6f} | {r['export_auc']:.6f} | "
                  f"{r['abs_diff']:.0e} | {r['bound']:.0e} | {r['file_bytes'] / 2**20:.2f} MiB | "
                  f"{'same' if r['reported_bytes'] == r['file_bytes'] else r['reported_bytes']} | {r['plan_params']} |")
    open(os.path.join(a.out, "export_parity.md"), "w").write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
