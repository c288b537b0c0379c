#!/usr/bin/python3
"""Serving throughput and latency under load from a separate process (wrk).

    python3 bench/serving.py [--build build] [--rows 300000] [--duration 10] [--connections 16]

Trains the demo's DLRM on `ember datagen ctr` data (hashed rows), exports it at each of
--precisions, serves each export with `ember serve`, and loads POST /v1/predict with wrk (one
wrk thread: on 2 cores the load generator and the server share the machine) for --duration
seconds with bodies of 1 and of 256 rows, as JSON and as tab-separated lines (Content-Type
text/tab-separated-values), with --connections connections, and the 256-row tab-separated body
also with --few-connections (the p99 of a queue is its depth: 16 x 256 rows in flight wait for
each other). Reports requests/s, predictions/s, p50/p99 latency as wrk measures it, non-2xx
responses and socket errors, and the server's mean rows per forward pass (how much concurrent
requests were batched). Then times ServingModel::Predict alone (build/bench/serving_forward_bench:
lookups and the dense forward, no HTTP, parsing or queueing) by batch size and dense precision, so
that a request's time can be split between the forward pass and the rest. Writes
bench/results/serving.{md,csv,png}.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request

from benchlib import datagen, free_port, write_csv


def ms(text):
    v, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def metric(text, name):
    m = re.search(r"^" + re.escape(name) + r" ([\d.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


CONTENT_TYPES = {"json": "application/json", "tsv": "text/tab-separated-values"}


def run_wrk(port, body_file, batch, duration, connections, out, body="json"):
    lua = os.path.join(out, f"serving-{batch}-{body}.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\n')
        f.write(f'wrk.headers["Content-Type"] = "{CONTENT_TYPES[body]}"\n')
        f.write(f'local f = io.open("{body_file}", "r")\nwrk.body = f:read("*a")\nf:close()\n')
    p = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", lua,
                        f"http://127.0.0.1:{port}/v1/predict"], stdout=subprocess.PIPE, text=True, check=True)
    t = p.stdout
    lat = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", t, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
    return {"requests_per_sec": float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)),
            "requests": int(re.search(r"(\d+) requests in", t).group(1)),
            "p50_ms": ms(lat["50"]), "p99_ms": ms(lat["99"]),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(int(x) for x in sock.groups()) if sock else 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rows", type=int, default=300000, help="training rows")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--precisions", default="fp32,int8", help="row precisions (ember export --precision)")
    ap.add_argument("--dense-precisions", default="fp32,int8,bf16",
                    help="ember serve --dense-precision values; past fp32, with fp32 rows, the single-row and 256-row "
                         "tab-separated cases only")
    ap.add_argument("--few-connections", type=int, default=4, help="connections of the low-latency 256-row case")
    ap.add_argument("--forward-workers", default="1,2",
                    help="ember serve --forward-workers values; past the first, the 256-row tab-separated cases only")
    ap.add_argument("--threads", type=int, default=2, help="ember serve --threads")
    ap.add_argument("--out", default="bench/results")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench/serving.py needs wrk, the load generator: apt-get install wrk")
    ember = os.path.abspath(os.path.join(a.build, "launcher", "ember"))
    out = os.path.abspath(a.out)
    work = os.path.join(out, "serving-data")
    os.makedirs(work, exist_ok=True)
    train, test = os.path.join(work, "train.tsv"), os.path.join(work, "test.tsv")
    datagen(ember, train, a.rows, 1)
    datagen(ember, test, 5000, 2)
    ckpt = os.path.join(work, "ckpt")
    if not os.path.isdir(ckpt):
        subprocess.run([ember, "train", "--config", "examples/synthetic_dlrm.toml", "--set", f"data.train={train}",
                        "--set", f"data.test={test}", "--set", "embedding.method=hash", "--set",
                        "embedding.rows=500000", "--set", f"checkpoint.dir={ckpt}", "--set", "train.progress=off"],
                       check=True)
    lines = open(test).read().splitlines()
    bodies = {}
    for batch in (1, 256):
        rows = [ln.split("\t")[1:] for ln in lines[:batch]]
        bodies[(batch, "json")] = os.path.join(work, f"body-{batch}.json")
        with open(bodies[(batch, "json")], "w") as f:
            json.dump({"rows": rows}, f)
        bodies[(batch, "tsv")] = os.path.join(work, f"body-{batch}.tsv")
        with open(bodies[(batch, "tsv")], "w") as f:
            f.write("".join("\t".join(r) + "\n" for r in rows))
    cases = [(1, "json", a.connections), (1, "tsv", a.connections), (256, "json", a.connections),
             (256, "tsv", a.connections), (256, "tsv", a.few_connections)]
    results = []
    runs = []
    for precision in a.precisions.split(","):
        for i, workers in enumerate(int(w) for w in a.forward_workers.split(",")):
            runs.append((precision, "fp32", workers,
                         cases if i == 0 else [c for c in cases if c[0] == 256 and c[1] == "tsv"]))
    for dense in a.dense_precisions.split(","):
        if dense == "fp32":
            continue
        for i, workers in enumerate(int(w) for w in a.forward_workers.split(",")):
            runs.append(("fp32", dense, workers,
                         [c for c in cases if c[1] == "tsv" and (i == 0 or c[0] == 256)]))
    exported = set()
    for precision, dense, workers, run_cases in runs:
        model = os.path.join(work, f"model-{precision}.embx")
        if precision not in exported:
            exported.add(precision)
            subprocess.run([ember, "export", "--checkpoint", ckpt, "--out", model, "--precision", precision],
                           check=True, stdout=subprocess.DEVNULL)
        size = os.path.getsize(model)
        port = free_port()
        server = subprocess.Popen([ember, "serve", "--model", model, "--port", str(port), "--threads", str(a.threads),
                                   "--forward-workers", str(workers), "--dense-precision", dense],
                                  stdout=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.1)
            for batch, body, conns in run_cases:
                before = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
                r = run_wrk(port, bodies[(batch, body)], batch, a.duration, conns, work, body)
                after = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
                rows = metric(after, "ember_serve_batch_rows_sum") - metric(before, "ember_serve_batch_rows_sum")
                passes = metric(after, "ember_serve_batch_rows_count") - metric(before, "ember_serve_batch_rows_count")
                r.update({"precision": precision, "dense": dense, "model_bytes": size, "batch": batch, "body": body,
                          "forward_workers": workers,
                          "connections": conns, "predictions_per_sec": r["requests_per_sec"] * batch,
                          "rows_per_forward": rows / passes if passes else 0})
                results.append(r)
                print(f"{precision} rows, {dense} dense, workers {workers} batch {batch:3d} {body} x{conns}: {r['requests_per_sec']:8.0f} req/s, "
                      f"{r['predictions_per_sec']:9.0f} predictions/s, p50 {r['p50_ms']:.2f} ms, "
                      f"p99 {r['p99_ms']:.2f} ms, {r['non_2xx']} non-2xx, {r['socket_errors']} socket errors, "
                      f"{r['rows_per_forward']:.1f} rows per forward pass", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    keys = ["precision", "dense", "model_bytes", "forward_workers", "batch", "body", "connections", "requests", "requests_per_sec",
            "predictions_per_sec", "p50_ms", "p99_ms", "non_2xx", "socket_errors", "rows_per_forward"]
    write_csv(os.path.join(out, "serving.csv"), results, keys)
    md = ["# Serving: POST /v1/predict under wrk", "",
          f"DLRM (the demo model: the reference shape, hashed rows) served by `ember serve` ({a.threads} HTTP "
          "threads, batching); wrk with 1 thread for "
          f"{a.duration} s per row, on the same 2-core machine. Body: JSON rows, or the same rows as "
          "tab-separated lines. Rows: the export's row precision; dense: `ember serve --dense-precision` (the "
          "dense layers' products).", "",
          "| rows | dense | model | forward workers | batch | body | connections | requests/s | predictions/s | p50 ms | "
          "p99 ms | errors | rows per forward |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        md.append(f"| {r['precision']} | {r['dense']} | {r['model_bytes'] / 2**20:.1f} MiB | {r['forward_workers']} | {r['batch']} | "
                  f"{r['body']} | "
                  f"{r['connections']} | "
                  f"{r['requests_per_sec']:.0f} | {r['predictions_per_sec']:.0f} | {r['p50_ms']:.2f} | "
                  f"{r['p99_ms']:.2f} | {r['non_2xx'] + r['socket_errors']} | {r['rows_per_forward']:.1f} |")
    # The forward pass alone, on the same model and rows.
    forward = subprocess.run([os.path.join(a.build, "bench", "serving_forward_bench"), "--model",
                              os.path.join(work, "model-fp32.embx"), "--rows", bodies[(256, "tsv")], "--batches",
                              "1,4,16,64,256", "--precisions", a.dense_precisions],
                             check=True, capture_output=True, text=True,
                             env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE")).stdout
    md += ["", "The forward pass alone (`serving_forward_bench`: `ServingModel::Predict`, the lookups and the dense "
           "layers, one thread calling, no HTTP), fp32 rows; passes of at most 16 rows run ember's AVX-512 fp32 "
           "product whatever the dense precision:", "", forward.strip()]
    open(os.path.join(out, "serving.md"), "w").write("\n".join(md) + "\n")
    print("\n".join(md))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(18, 4.5))
        labels = [f"{r['precision']}/{r['dense']} w{r['forward_workers']}\n{r['batch']} {r['body']}\nx{r['connections']}"
                  for r in results]
        ax.bar(labels, [r["predictions_per_sec"] for r in results])
        ax.set_ylabel("predictions/s")
        ax.set_title("throughput")
        x = range(len(results))
        bx.bar([i - 0.2 for i in x], [r["p50_ms"] for r in results], width=0.4, label="p50")
        bx.bar([i + 0.2 for i in x], [r["p99_ms"] for r in results], width=0.4, label="p99")
        bx.set_xticks(list(x))
        bx.set_xticklabels(labels)
        bx.set_ylabel("latency, ms")
        bx.set_title("request latency (wrk)")
        bx.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "serving.png"), dpi=120)
    except ImportError:
        print("matplotlib missing: no plot")


if __name__ == "__main__":
    main()
