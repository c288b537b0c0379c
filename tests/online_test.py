#!/usr/bin/python3
"""The production loop with real processes: `ember train` follows a directory into which files keep
arriving and exports every few steps (deltas after each full export: export.delta, full_every 4);
`ember serve --model DIR` swaps each export (a delta resolved through its chain) in while a bounded
client keeps it busy. Checks: at least --swaps swaps, no failed request, every answer equal to what
its export predicts when served alone, the training job stopped by SIGTERM exits 0 with a
checkpoint. Prints the freshness (export written -> first answer from it) and the client's latency
without swaps and during them (docs/online.md).

    python3 tests/online_test.py EMBER [--swaps 10] [--json OUT]
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, proc, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit("online_test: the server exited early (%s)" % proc.returncode)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    sys.exit("online_test: the server did not come up")


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    return json.loads(r.read()) if path == "/healthz" else r.read().decode()


def pctl(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ember")
    ap.add_argument("--swaps", type=int, default=10)
    ap.add_argument("--json")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ember_online_")
    procs = []
    try:
        run(a, work, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


def run(a, work, procs):
    E = a.ember
    subprocess.run([E, "datagen", "ctr", "--rows", "120000", "--max-vocab", "20000", "--out", work + "/all.tsv"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lines = open(work + "/all.tsv").read().splitlines(True)
    stream, exports = work + "/stream", work + "/exports"
    os.makedirs(stream)
    parts = [lines[i:i + 3000] for i in range(0, len(lines), 3000)]

    def add_part(k):  # written beside the stream, renamed in: a file joins it whole
        tmp = "%s/.part-%03d" % (stream, k)
        open(tmp, "w").writelines(parts[k])
        os.rename(tmp, "%s/part-%03d.tsv" % (stream, k))

    add_part(0)
    add_part(1)
    cfg = work + "/run.toml"
    open(cfg, "w").write("""[data]
train = "%s"
follow = true
follow_poll_seconds = 0.05
[model]
bottom_mlp = [32]
top_mlp = [32]
[embedding]
dim = 8
method = "hash"
rows = 50000
[train]
batch_size = 500
progress = "log"
threads = 1
[export]
dir = "%s"
every_steps = 6
keep = 0
delta = true
full_every = 4
[checkpoint]
dir = "%s/ckpt"
""" % (stream, exports, work))
    train_log = open(work + "/train.log", "w")
    train = subprocess.Popen([E, "train", "--config", cfg], stdout=train_log, stderr=subprocess.STDOUT)
    procs.append(train)
    end = time.time() + 60
    while not (os.path.isdir(exports) and any(f.endswith(".embx") for f in os.listdir(exports))):
        if time.time() > end or train.poll() is not None:
            sys.exit("online_test: no first export:\n" + open(work + "/train.log").read())
        time.sleep(0.1)
    port = free_port()
    serve_log = open(work + "/serve.log", "w")
    serve = subprocess.Popen([E, "serve", "--model", exports, "--port", str(port), "--poll-seconds", "0.1",
                              "--threads", "2"], stdout=serve_log, stderr=subprocess.STDOUT)
    procs.append(serve)
    wait_http(port, serve)

    # The client: 3 threads, keep-alive connections, 1-8 rows of the data per request.
    rows = [l.rstrip("\n").split("\t")[1:] for l in lines[-64:]]
    stop = threading.Event()
    phase = {"swaps": False}
    answers, failures, lat = [], [], {"quiet": [], "swaps": []}
    lock = threading.Lock()

    def client(seed):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        k = seed
        while not stop.is_set():
            n = 1 + k % 8
            start = k % (len(rows) - n)
            body = json.dumps({"rows": rows[start:start + n]})
            t0 = time.time()
            try:
                conn.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                if r.status != 200:
                    raise RuntimeError("status %d: %s" % (r.status, data[:200]))
                j = json.loads(data)
                with lock:
                    answers.append((t0, j["model"], start, n, j["probabilities"]))
                    lat["swaps" if phase["swaps"] else "quiet"].append(time.time() - t0)
            except Exception as e:  # noqa: BLE001: every failure counts
                with lock:
                    failures.append(repr(e))
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            k += 7
            time.sleep(0.002)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    # Quiet phase: no new data, so no new exports (after the first files are trained).
    time.sleep(2.0)
    base_swaps = get(port, "/healthz")["swaps"]
    time.sleep(2.0)
    quiet_swaps = get(port, "/healthz")["swaps"] - base_swaps
    phase["swaps"] = True
    k = 2
    end = time.time() + 150
    while get(port, "/healthz")["swaps"] < a.swaps + base_swaps + quiet_swaps and time.time() < end:
        if k < len(parts):
            add_part(k)
            k += 1
        time.sleep(0.4)
    stop.set()
    for t in threads:
        t.join()
    health = get(port, "/healthz")
    metrics = get(port, "/metrics")
    train.send_signal(signal.SIGTERM)
    rc = train.wait(timeout=120)
    serve.send_signal(signal.SIGTERM)
    serve.wait(timeout=60)
    tlog = open(work + "/train.log").read()
    if rc != 0 or "stopped by a signal after step" not in tlog:
        sys.exit("online_test: training did not stop cleanly (rc %s):\n%s" % (rc, tlog[-3000:]))
    swaps = health["swaps"]
    print("online_test: %d answers, %d failed, %d swaps (%d while no data arrived), live %s" %
          (len(answers), len(failures), swaps, quiet_swaps, health["version"]))
    if failures:
        sys.exit("online_test: FAIL: failed requests: %s" % failures[:5])
    if swaps < a.swaps:
        sys.exit("online_test: FAIL: %d swaps, wanted %d\n%s" % (swaps, a.swaps, open(work + "/serve.log").read()))
    if "ember_serving_swaps_total %d\n" % swaps not in metrics or "ember_serving_failed_loads_total 0\n" not in metrics:
        sys.exit("online_test: FAIL: metrics disagree:\n" + metrics)

    # Every version answered: served alone, its export predicts what the live server answered.
    versions = sorted({v for _, v, _, _, _ in answers})
    first_seen = {}
    for t0, v, _, _, _ in answers:
        first_seen[v] = min(first_seen.get(v, t0), t0)
    checked = 0
    for v in versions:
        p2 = free_port()
        alone = subprocess.Popen([E, "serve", "--model", exports + "/" + v, "--port", str(p2)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        procs.append(alone)
        wait_http(p2, alone)
        conn = http.client.HTTPConnection("127.0.0.1", p2, timeout=30)
        conn.request("POST", "/v1/predict", json.dumps({"rows": rows}), {"Content-Type": "application/json"})
        ref = json.loads(conn.getresponse().read())["probabilities"]
        alone.send_signal(signal.SIGTERM)
        alone.wait(timeout=30)
        for _, got_v, start, n, probs in answers:
            if got_v != v:
                continue
            for i, p in enumerate(probs):
                if abs(p - ref[start + i]) > 1e-6:
                    sys.exit("online_test: FAIL: %s row %d answered %r, the export alone %r" % (v, start + i, p,
                                                                                              ref[start + i]))
            checked += 1
    # Freshness: the export's file time to the first answer from it (swapped-in versions only).
    fresh = []
    for v in versions[1:]:
        written = os.path.getmtime(exports + "/" + v)
        fresh.append(first_seen[v] - written)
    result = {
        "answers": len(answers), "failed": len(failures), "swaps": swaps, "versions": len(versions),
        "checked_answers": checked,
        "freshness_s_median": pctl(fresh, 0.5), "freshness_s_max": max(fresh) if fresh else None,
        "p50_ms_quiet": 1000 * pctl(lat["quiet"], 0.5), "p99_ms_quiet": 1000 * pctl(lat["quiet"], 0.99),
        "p50_ms_swaps": 1000 * pctl(lat["swaps"], 0.5), "p99_ms_swaps": 1000 * pctl(lat["swaps"], 0.99),
        "requests_quiet": len(lat["quiet"]), "requests_swaps": len(lat["swaps"]),
    }
    print("online_test: " + json.dumps(result))
    if a.json:
        json.dump(result, open(a.json, "w"), indent=1)
    print("online_test: PASS")


if __name__ == "__main__":
    main()
