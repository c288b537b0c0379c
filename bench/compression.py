#!/usr/bin/python3
"""Test AUC against embedding memory: DLRM on `ember datagen ctr` data with every compression
method at budgets 1, 1/10, 1/100 and 1/1000 of the full table (`full` under a budget: the most frequent
values that fit), plus the issue's fixed points
(DSL at density 0.5, OptEmbed without a budget). Writes bench/results/compression.{md,csv,png}.

    python3 bench/compression.py [--build build] [--rows 1000000] [--data DIR]
    python3 bench/compression.py --teacher longtail --model wide_deep  # rare values carry signal
    python3 bench/compression.py --criteo ../shared/data/criteo/...   # smoke on a Criteo sample

Every run is `ember train --metrics-json`; memory is the parameter bytes the PS holds after
training (4 per stored weight, plus DSL's masks) and the resident bytes it reports (optimizer
state and index included), next to what `ember plan` predicted. A budget a method cannot meet is
reported with ember's error message instead of a number.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import time

BUDGETS = [("1", 1.0), ("1/10", 0.1), ("1/100", 0.01), ("1/1000", 0.001)]
# `full` under a budget keeps the most frequent values that fit (one out-of-vocabulary row per field).
METHODS = ["full", "hash", "unified", "optembed", "dsl"]


def run(ember, config, sets, metrics, log):
    cmd = [ember, "train", "--config", config, "--metrics-json", metrics]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.time()
    with open(log, "w") as f:
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True)
    secs = time.time() - t0
    if p.returncode != 0:
        msg = open(log).read().strip().splitlines()
        return None, (msg[-1] if msg else "failed"), secs
    return json.load(open(metrics)), None, secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--data", default="bench/results/compression-data")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--criteo", help="a Criteo-format file: smoke run (split 80/10/10), no synthetic data")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--reuse", action="store_true", help="reuse the metrics of runs already in --data")
    ap.add_argument("--teacher", default="default", choices=["default", "longtail"],
                    help="datagen's teacher: longtail gives rare values effects as strong as frequent ones")
    ap.add_argument("--model", default="dlrm", help="model.name of every run")
    ap.add_argument("--no-extras", action="store_true", help="only the budgets (no DSL/OptEmbed fixed points)")
    a = ap.parse_args()
    ember = os.path.join(a.build, "launcher", "ember")
    os.makedirs(a.data, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    tag = "compression" if not a.criteo else "compression-criteo"
    if not a.criteo and (a.teacher != "default" or a.model != "dlrm"):
        tag += ("-" + a.teacher if a.teacher != "default" else "") + ("-" + a.model if a.model != "dlrm" else "")
    if a.criteo:
        lines = open(a.criteo).read().splitlines()
        n = len(lines)
        parts = {"train": lines[: n * 8 // 10], "valid": lines[n * 8 // 10: n * 9 // 10], "test": lines[n * 9 // 10:]}
        for k, v in parts.items():
            with open(os.path.join(a.data, k + ".tsv"), "w") as f:
                f.write("\n".join(v) + "\n")
        oracle = None
    else:
        for name, rows, seed in [("train", a.rows, 1), ("valid", a.rows // 10, 3), ("test", a.rows // 5, 2)]:
            path = os.path.join(a.data, name + ".tsv")
            if not os.path.exists(path):
                subprocess.run([ember, "datagen", "ctr", "--teacher", a.teacher, "--rows", str(rows), "--seed",
                                str(seed), "--out", path], check=True)
        oracle = json.load(open(os.path.join(a.data, "test.tsv.oracle.json")))["auc"]
    config = os.path.join(a.data, "run.toml")
    with open(config, "w") as f:
        f.write(f"""[data]
train = "{a.data}/train.tsv"
valid = "{a.data}/valid.tsv"
test = "{a.data}/test.tsv"
[model]
name = "{a.model}"
[embedding]
dim = 16
[train]
epochs = 1
batch_size = 1024
progress = "log"
log_interval_s = 60
""")
    runs = [("full", "1", ["embedding.method=\"full\""])]
    search = []  # OptEmbed's search at its defaults
    for m in a.methods.split(","):
        for label, frac in BUDGETS:
            if m == "full" and frac == 1.0:
                continue  # the reference run above
            runs.append((m, label, [f"embedding.method=\"{m}\"", f"embedding.budget={frac}"] +
                         (search if m == "optembed" else [])))
    if not a.no_extras:
        runs.append(("dsl", "density 0.5", ["embedding.method=\"dsl\"", "embedding.density=0.5"]))
        runs.append(("optembed", "no budget", ["embedding.method=\"optembed\""] + search))
        runs.append(("optembed", "1/4", ["embedding.method=\"optembed\"", "embedding.budget=0.25"] + search))
        runs.append(("optembed", "1/6", ["embedding.method=\"optembed\"", "embedding.budget=\"1/6\""] + search))
        runs.append(("optembed", "no budget, alpha 0.04",
                     ["embedding.method=\"optembed\"", "optembed.alpha=0.04"] + search))
    results = []
    for method, label, sets in runs:
        key = f"{method}-{label}".replace("/", "_").replace(" ", "_")
        metrics = os.path.join(a.data, key + ".json")
        log = os.path.join(a.data, key + ".log")
        if a.reuse and os.path.exists(metrics):
            m, err, secs = json.load(open(metrics)), None, 0.0
        else:
            m, err, secs = run(ember, config, sets, metrics, log)
        row = {"method": method, "budget": label, "seconds": round(secs, 1)}
        if m:
            row.update({"auc": m["auc"], "logloss": m["logloss"], "param_bytes": m["param_bytes"],
                        "full_bytes": m["full_bytes"], "budget_bytes": m["budget_bytes"],
                        "resident_bytes": m["table_bytes"], "planned_resident_bytes": m["planned_resident_bytes"],
                        "rows": m["table_rows"], "kept_rows": m.get("kept_rows", ""),
                        "supernet_rows": m.get("supernet_rows", ""), "error": ""})
        else:
            row["error"] = err
        results.append(row)
        print(f"{method:9s} {label:12s} " + (f"AUC {row['auc']:.5f}  params {row['param_bytes']/2**20:8.2f} MiB"
                                              if m else f"-- {err}"), flush=True)
    fields = ["method", "budget", "auc", "logloss", "param_bytes", "full_bytes", "budget_bytes", "resident_bytes",
              "planned_resident_bytes", "rows", "kept_rows", "supernet_rows", "seconds", "error"]
    with open(os.path.join(a.out, tag + ".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in results:
            w.writerow({k: r.get(k, "") for k in fields})
    full = next((r for r in results if r["method"] == "full" and "auc" in r), None)
    source = f"datagen ctr --teacher {a.teacher}, {a.rows} train rows"
    md = [f"# AUC against embedding memory ({'Criteo sample ' + a.criteo if a.criteo else source})",
          "", f"{a.model}, dim 16, 1 epoch, batch 1024; test AUC" + (f" (oracle {oracle:.5f})" if oracle else "") +
          "; params = bytes the PS holds (4 per stored weight, + DSL masks); resident = measured with optimizer "
          "state and index, against `ember plan`'s estimate.", "",
          "| method | budget | test AUC | Δ vs full | params | of full | resident | plan | rows | time vs full | note |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "auc" not in r:
            md.append(f"| {r['method']} | {r['budget']} | – | – | – | – | – | – | – | – | {r['error'][:160]} |")
            continue
        note = ""
        if r["kept_rows"] != "":
            note = f"kept {r['kept_rows']} of {r['supernet_rows']} rows ({100 * (1 - r['kept_rows'] / max(1, r['supernet_rows'])):.1f}% pruned)"
        delta = f"{r['auc'] - full['auc']:+.5f}" if full else ""
        full_bytes = full["full_bytes"] if full else r["full_bytes"]
        if r["method"] == "optembed":
            plan = "(supernet: full)"  # the plan is stage 1's; stage 3 holds what the search kept
        else:
            ratio = r["resident_bytes"] / max(1, r["planned_resident_bytes"])
            plan = f"{r['planned_resident_bytes'] / 2**20:.2f} MiB ({ratio:.2f}x)"
        md.append(f"| {r['method']} | {r['budget']} | {r['auc']:.5f} | {delta} | {r['param_bytes'] / 2**20:.2f} MiB | "
                  f"{r['param_bytes'] / max(1, full_bytes):.4f} | {r['resident_bytes'] / 2**20:.2f} MiB | "
                  f"{plan} | {r['rows']} | {r['seconds'] / max(0.1, full['seconds']) if full else 0:.1f}x | {note} |")
    text = "\n".join(md) + "\n"
    with open(os.path.join(a.out, tag + ".md"), "w") as f:
        f.write(text)
    print(text)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib absent: no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    for method, color in zip(METHODS, ["#000000", "#7f8c8d", "#c0392b", "#2980b9", "#27ae60"]):
        pts = sorted((r["param_bytes"], r["auc"]) for r in results if r["method"] == method and "auc" in r)
        if pts:
            ax.plot([p[0] / 2**20 for p in pts], [p[1] for p in pts], "o-", color=color, label=method)
    if full:
        ax.axhline(full["auc"], color="black", ls="--", lw=1, label=f"full table ({full['param_bytes'] / 2**20:.1f} MiB)")
    if oracle:
        ax.axhline(oracle, color="black", ls=":", lw=1, label="oracle")
    ax.set_xscale("log")
    ax.set_xlabel("embedding parameters held (MiB, log)")
    ax.set_ylabel("test AUC")
    ax.set_title(f"{a.model} test AUC against embedding memory ({a.teacher} teacher)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, tag + ".png"), dpi=110)


if __name__ == "__main__":
    main()
