#!/usr/bin/python3
"""Training with monitoring on against off, measured in the same run, two ways.

    python3 bench/monitoring.py [--build build] [--data FILE] [--rows 300000] [--reps 4] [--blocks 40]

1. In one process (build/bench/monitoring_bench): two identical trainers take turns in blocks
   of 10 steps, order alternating; "on" records into the registry served at /metrics (table
   collector included) and is scraped every --scrape-interval seconds, "off" into the no-op
   recorder. The median of the per-block ratios is the figure: it cancels this machine's drift.
   It also times the recording calls of one step.
2. End to end: `ember train` runs, alternating monitoring.port = 0 and on (scraped by this
   script every --scrape-interval seconds, 5x Prometheus' default rate in
   monitoring/prometheus.yml); samples/s from --metrics-json (training time only). Full tables,
   because ember counts field vocabularies for them either way: with hashing, only monitoring-on
   runs would count, and that pass leaves glibc's heap in a state that measured 10-20% faster
   training, which is not monitoring's doing.

Writes bench/results/monitoring.{md,csv,png}.
"""
import argparse
import json
import os
import statistics
import subprocess
import threading
import time
import urllib.request

from benchlib import datagen, free_port, write_csv


def scraper(port, interval, stop, counts):
    while not stop.is_set():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                counts["bytes"] = len(r.read())
                counts["scrapes"] += 1
        except OSError:
            pass  # not up yet, or gone
        stop.wait(interval)


def train(ember, data, rows, on, interval, out):
    metrics = os.path.join(out, "monitoring-run.json")
    cmd = [ember, "train", "--config", "examples/synthetic_dlrm.toml", "--metrics-json", metrics,
           "--set", f"data.train={data}", "--set", "data.test=", "--set", f"data.max_rows={rows}",
           "--set", "embedding.method=full", "--set", "train.progress=off"]
    counts = {"scrapes": 0, "bytes": 0}
    stop = threading.Event()
    t = None
    if on:
        port = free_port()
        cmd += ["--set", f"monitoring.port={port}"]
        t = threading.Thread(target=scraper, args=(port, interval, stop, counts))
        t.start()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stop.set()
    if t:
        t.join()
    if p.returncode != 0:
        raise SystemExit(f"ember train failed:\n{p.stdout}")
    m = json.load(open(metrics))
    return m["samples_per_sec"], counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--data", default="", help="Criteo-format training file (default: generated)")
    ap.add_argument("--rows", type=int, default=300000)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--scrape-interval", type=float, default=1.0)
    ap.add_argument("--blocks", type=int, default=40, help="in-process blocks (of 10 steps) per trainer")
    ap.add_argument("--out", default="bench/results")
    a = ap.parse_args()
    ember = os.path.join(a.build, "launcher", "ember")
    os.makedirs(a.out, exist_ok=True)
    data = a.data
    if not data:
        data = datagen(ember, os.path.join(a.out, "monitoring-train.tsv"), a.rows)
    step_json = os.path.join(a.out, "monitoring-steps.json")
    subprocess.run([os.path.join(a.build, "bench", "monitoring_bench"), "--data", data, "--blocks", str(a.blocks),
                    "--scrape-interval", str(a.scrape_interval), "--json", step_json], check=True,
                   env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))
    steps = json.load(open(step_json))
    # One warm-up run (page cache, the field counts' cache) that is not reported.
    train(ember, data, a.rows, True, a.scrape_interval, a.out)
    runs = []
    for r in range(a.reps):
        for on in ((False, True) if r % 2 == 0 else (True, False)):
            sps, counts = train(ember, data, a.rows, on, a.scrape_interval, a.out)
            runs.append({"rep": r, "monitoring": "on" if on else "off", "samples_per_sec": sps,
                         "scrapes": counts["scrapes"], "exposition_bytes": counts["bytes"]})
            print(f"rep {r} monitoring {'on ' if on else 'off'}: {sps:9.0f} samples/s"
                  + (f", {counts['scrapes']} scrapes of {counts['bytes']} bytes" if on else ""), flush=True)
    off = [x["samples_per_sec"] for x in runs if x["monitoring"] == "off"]
    on = [x["samples_per_sec"] for x in runs if x["monitoring"] == "on"]
    ratio = statistics.median(on) / statistics.median(off)
    pairs = [b["samples_per_sec"] / a_["samples_per_sec"]
             for a_, b in zip([x for x in runs if x["monitoring"] == "off"], [x for x in runs if x["monitoring"] == "on"])]
    write_csv(os.path.join(a.out, "monitoring.csv"), runs)
    md = ["# Training with monitoring on vs off", "",
          f"## In one process: {a.blocks} interleaved blocks of {steps['steps_per_block']} steps per trainer", "",
          f"DLRM (demo model), hashed rows, batch {steps['batch_size']}; 'on' = registry + table collector + "
          f"/metrics scraped every {a.scrape_interval:g} s ({steps['scrapes']} scrapes of {steps['scrape_bytes']} "
          "bytes).", "",
          "| | ms per step (median) |", "|---|---|",
          f"| off | {steps['median_off'] * 1e3:.2f} |", f"| on | {steps['median_on'] * 1e3:.2f} |", "",
          f"median of the per-block ratios on / off (step time): **{steps['median_ratio']:.4f}**; blocks range "
          f"from {min(steps['paired_ratios']):.3f} to {max(steps['paired_ratios']):.3f}; of CPU time per step "
          f"(process-wide, the HTTP server's included): **{steps['median_cpu_ratio']:.4f}**. Recording one step's 16 "
          f"metrics takes {steps['record_us_per_step']:.2f} µs "
          f"({100 * steps['record_us_per_step'] * 1e-6 / steps['median_off']:.4f}% of a step).", "",
          "## End to end: `ember train`, separate processes", "",
          f"DLRM, full tables, {a.rows} examples per run, {a.reps} repetitions in alternating order; "
          f"'on' = registry + /metrics scraped every {a.scrape_interval:g} s.", "",
          "| rep | off (samples/s) | on (samples/s) | on / off |", "|---|---|---|---|"]
    for r in range(a.reps):
        o = next(x for x in runs if x["rep"] == r and x["monitoring"] == "off")["samples_per_sec"]
        n = next(x for x in runs if x["rep"] == r and x["monitoring"] == "on")["samples_per_sec"]
        md.append(f"| {r} | {o:.0f} | {n:.0f} | {n / o:.3f} |")
    md += ["", f"median on / median off: **{ratio:.3f}**; per-repetition ratios from {min(pairs):.3f} to "
           f"{max(pairs):.3f} (samples/s, < 1 = slower; the run-to-run spread of this machine).", ""]
    open(os.path.join(a.out, "monitoring.md"), "w").write("\n".join(md))
    print("\n".join(md))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (bx, ax) = plt.subplots(1, 2, figsize=(11, 3.8))
        blocks = range(len(steps["off_seconds_per_step"]))
        bx.plot(blocks, [x * 1e3 for x in steps["off_seconds_per_step"]], "o-", label="off")
        bx.plot(blocks, [x * 1e3 for x in steps["on_seconds_per_step"]], "s-", label="on")
        bx.set_xlabel("block (order alternates)")
        bx.set_ylabel("ms per training step")
        bx.set_title(f"one process: median ratio {steps['median_ratio']:.3f}")
        bx.set_ylim(bottom=0)
        bx.legend()
        ax.plot(range(a.reps), [next(x for x in runs if x["rep"] == r and x["monitoring"] == "off")["samples_per_sec"]
                                for r in range(a.reps)], "o-", label="monitoring off")
        ax.plot(range(a.reps), [next(x for x in runs if x["rep"] == r and x["monitoring"] == "on")["samples_per_sec"]
                                for r in range(a.reps)], "s-", label=f"on, scraped every {a.scrape_interval:g} s")
        ax.set_xlabel("repetition")
        ax.set_ylabel("training samples/s")
        ax.set_title(f"ember train runs: median ratio {ratio:.3f}")
        ax.set_ylim(bottom=0)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "monitoring.png"), dpi=120)
    except ImportError:
        print("matplotlib missing: no plot")


if __name__ == "__main__":
    main()
