#!/usr/bin/env python3
"""Integration test: a real Prometheus (Debian's `prometheus` package) scrapes a real `ember
train` with the project's scrape config, and its HTTP query API must show ember's series with the
values the run produced. Every ember_* series the training dashboard reads must have been scraped.

usage: prometheus_test.py EMBER_BINARY SOURCE_DIR
Exits 77 (CTest: skipped) with a message when the prometheus binary is absent.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

SKIP = 77


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


class Prom:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def query(self, expr):
        body = json.loads(get(self.base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr):
        r = self.query(expr)
        assert len(r) == 1, f"{expr}: expected one series, got {r}"
        return float(r[0]["value"][1])

    def names(self):
        return set(json.loads(get(self.base + "/api/v1/label/__name__/values"))["data"])


def wait_for(ready, seconds, what, on_fail=None, interval=0.5):
    """Polls ready() (exceptions count as not ready) until true; fails naming `what`."""
    deadline = time.time() + seconds
    while True:
        try:
            if ready():
                return
        except Exception:
            pass
        if time.time() > deadline or (on_fail and on_fail()):
            raise AssertionError(what)
        time.sleep(interval)


def at_least(prom, expr, value):
    r = prom.query(expr)
    return bool(r) and float(r[0]["value"][1]) >= value


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def main():
    ember, src = sys.argv[1], sys.argv[2]
    prometheus = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None)
    if not prometheus:
        print("SKIPPED: no prometheus binary; install Debian's package (apt-get install prometheus) to run this test")
        return SKIP
    tmp = tempfile.mkdtemp(prefix="ember-prom-")
    procs = []
    try:
        # Data: 30000 training rows (30 steps of 1024, the last one short), 5000 test rows.
        train, test = os.path.join(tmp, "train.tsv"), os.path.join(tmp, "test.tsv")
        for path, rows, seed in ((train, 30000, 1), (test, 5000, 2)):
            subprocess.run([ember, "datagen", "ctr", "--rows", str(rows), "--seed", str(seed), "--max-vocab", "5000",
                            "--out", path], check=True, stdout=subprocess.DEVNULL)
        ember_port, prom_port, serve_port = free_port(), free_port(), free_port()

        # The project's scrape config, pointed at this run's port and scraping every second.
        config = open(os.path.join(src, "monitoring", "prometheus.yml")).read()
        check("127.0.0.1:9400" in config, "monitoring/prometheus.yml scrapes 127.0.0.1:9400 (rank 0)")
        check("127.0.0.1:8080" in config, "monitoring/prometheus.yml scrapes ember serve on 127.0.0.1:8080")
        config = config.replace("127.0.0.1:9400", f"127.0.0.1:{ember_port}")
        config = config.replace("127.0.0.1:8080", f"127.0.0.1:{serve_port}")
        config = re.sub(r"scrape_interval: \d+s", "scrape_interval: 1s", config)
        config = re.sub(r"scrape_timeout: \d+s", "scrape_timeout: 1s", config)
        config = re.sub(r"evaluation_interval: \d+s", "evaluation_interval: 1s", config)
        prom_config = os.path.join(tmp, "prometheus.yml")
        open(prom_config, "w").write(config)
        promtool = shutil.which("promtool")
        if promtool:
            subprocess.run([promtool, "check", "config", prom_config], check=True, stdout=subprocess.DEVNULL)
        prom_log = open(os.path.join(tmp, "prometheus.log"), "w")
        procs.append(subprocess.Popen([prometheus, f"--config.file={prom_config}",
                                       f"--storage.tsdb.path={tmp}/tsdb",
                                       f"--web.listen-address=127.0.0.1:{prom_port}"],
                                      stdout=prom_log, stderr=subprocess.STDOUT))
        prom = Prom(prom_port)

        def prometheus_died():
            if procs[0].poll() is None:
                return False
            print(open(os.path.join(tmp, "prometheus.log")).read())
            return True
        wait_for(lambda: get(prom.base + "/-/ready", timeout=1) is not None, 30, "prometheus did not become ready",
                 prometheus_died, 0.2)

        # DSL tables with one hashed field: DSL rounds, a hashed table's collision estimate.
        run_toml = os.path.join(tmp, "run.toml")
        open(run_toml, "w").write(f"""
[data]
train = "{train}"
test = "{test}"
[model]
name = "dlrm"
bottom_mlp = [32]
top_mlp = [32]
[embedding]
method = "dsl"
density = 0.5
dim = 8
rows = 2000
field_methods = {{ C1 = "hash" }}
[dsl]
interval = 5
[train]
batch_size = 1024
progress = "log"
[ps]
shards = 2
[checkpoint]
dir = "{tmp}/ckpt"
[monitoring]
port = {ember_port}
linger_s = 60
""")
        ember_log = open(os.path.join(tmp, "ember.log"), "w")
        procs.append(subprocess.Popen([ember, "train", "--config", run_toml], stdout=ember_log,
                                      stderr=subprocess.STDOUT))
        # Wait until Prometheus has scraped the finished run (ember lingers, serving metrics); a
        # scrape is counted once answered, so it shows from the next scrape on.
        def ember_died():
            if procs[1].poll() is None:
                return False
            print(open(os.path.join(tmp, "ember.log")).read())
            return True
        wait_for(lambda: prom.query('ember_eval_samples{job="ember-train"}') and
                 at_least(prom, 'ember_eval_samples{job="ember-train"}', 5000) and
                 at_least(prom, 'ember_http_requests_total{job="ember-train",path="/metrics",code="200"}', 2),
                 120, "no scrape of the finished run reached Prometheus", ember_died)

        job = '{job="ember-train"}'
        check(prom.value('up{job="ember-train",instance="127.0.0.1:%d"}' % ember_port) == 1, "target up")
        check(prom.value(f"ember_train_samples_total{job}") == 30000, "ember_train_samples_total = 30000")
        check(prom.value(f"ember_train_steps_total{job}") == 30, "ember_train_steps_total = 30")
        check(prom.value('ember_ps_pull_seconds_count{job="ember-train",phase="train"}') == 30,
              "one pull latency observation per step")
        auc = prom.value(f"ember_eval_auc{job}")
        check(0.6 < auc < 1, f"eval AUC {auc:.4f} in (0.6, 1)")
        check(prom.value('ember_info{job="ember-train",role="train",rank="0"}') == 1, "ember_info names role and rank")
        rows = prom.value(f"sum(ember_table_rows{job})")
        check(rows > 0 and rows == prom.value(f"ember_embedding_rows{job}"), f"table rows sum to the total ({rows:.0f})")
        check(prom.value(f"sum(ember_shard_rows{job})") == rows, "shard rows sum to the total")
        skew = prom.value(f"ember_shard_skew{job}")
        check(1 <= skew < 1.2, f"shard skew {skew:.3f} in [1, 1.2)")
        ratio = prom.value(f"ember_embedding_compression_ratio{job}")
        check(ratio > 1.5, f"compression ratio {ratio:.2f} > 1.5 (dsl density 0.5)")
        coll = prom.query(f"ember_table_collision_rate{job}")
        # C1's rows and its first-order weights (model.first_order, auto for dlrm): two hashed tables.
        check(len(coll) == 2 and all(0 < float(c["value"][1]) < 1 for c in coll),
              "two hashed tables, collision rates in (0, 1)")
        check(prom.value(f"sum(ember_dsl_rounds_total{job})") > 0, "DSL rounds counted")
        check(prom.value(f"sum(ember_dsl_pruned_values_total{job})") ==
              prom.value(f"sum(ember_dsl_regrown_values_total{job})"), "DSL regrows what it prunes")
        check(prom.value(f"ember_process_resident_bytes{job}") > 20e6, "resident memory > 20 MB")
        check(prom.value('sum(ember_http_requests_total{job="ember-train",path="/metrics",code="200"})') >= 2,
              "scrapes counted by the server")
        check(prom.value(f"ember_train_staleness_bound{job}") == 0, "staleness bound 0 (one process)")

        # Every ember_* series the training dashboard reads was scraped (OptEmbed's appear only
        # under OptEmbed).
        dash = json.load(open(os.path.join(src, "monitoring", "dashboards", "training.json")))
        exprs = " ".join(t["expr"] for p in dash["panels"] for t in p.get("targets", []))
        wanted = {n for n in re.findall(r"ember_[a-z_]+", exprs) if not n.startswith("ember_optembed_")}
        missing = sorted(wanted - prom.names())
        check(not missing, f"{len(wanted)} dashboard series scraped (missing: {missing})")

        # The trained model, exported and served: its port answers /metrics too.
        model = os.path.join(tmp, "model.embx")
        subprocess.run([ember, "export", "--checkpoint", os.path.join(tmp, "ckpt"), "--out", model], check=True,
                       stdout=subprocess.DEVNULL)
        procs.append(subprocess.Popen([ember, "serve", "--model", model, "--port", str(serve_port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        rows = [line.split("\t")[1:] for line in open(test).read().splitlines()[:2]]
        body = json.dumps({"rows": rows}).encode()
        wait_for(lambda: get(f"http://127.0.0.1:{serve_port}/healthz", timeout=1), 30, "ember serve did not come up",
                 interval=0.2)
        for _ in range(3):
            req = urllib.request.Request(f"http://127.0.0.1:{serve_port}/v1/predict", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                check(len(json.loads(r.read())["probabilities"]) == 2, "two probabilities per request")
        wait_for(lambda: at_least(prom, 'ember_serve_predictions_total{job="ember-serve"}', 6) and
                 at_least(prom, 'ember_http_requests_total{job="ember-serve",path="/metrics",code="200"}', 1),
                 60, "no scrape of ember serve reached Prometheus")
        check(prom.value('sum(ember_http_requests_total{job="ember-serve",path="/v1/predict",code="200"})') == 3,
              "3 predict requests counted")
        check(prom.value('ember_info{job="ember-serve",role="serve"}') == 1, "ember_info names the serve role")
        dash = json.load(open(os.path.join(src, "monitoring", "dashboards", "serving.json")))
        exprs = " ".join(t["expr"] for p in dash["panels"] for t in p.get("targets", []))
        wanted = set(re.findall(r"ember_[a-z_]+", exprs))
        missing = sorted(wanted - prom.names())
        check(not missing, f"{len(wanted)} serving dashboard series scraped (missing: {missing})")
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
