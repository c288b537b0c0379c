#!/usr/bin/env python3
"""Writes ember's Grafana dashboards (training.json, serving.json) next to this script.

The JSON files are committed; edit the panels here and run
    python3 monitoring/dashboards/generate.py
Import them in Grafana (Dashboards > Import) and pick the Prometheus data source that scrapes
ember (monitoring/prometheus.yml). Every ember_* series a panel reads is one that ember exports;
tests/prometheus_test.sh checks the training dashboard's against a real scrape.
"""
import json
import os

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def panel(title, targets, unit="short", kind="timeseries", description=""):
    return {
        "title": title,
        "type": kind,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
        "targets": [{"datasource": DS, "expr": e, "legendFormat": l, "refId": chr(ord("A") + i)}
                    for i, (e, l) in enumerate(targets)],
    }


def quantiles(metric, sel, by="", q=(0.5, 0.99)):
    group = "le" + ("," + by if by else "")
    prefix = "{{" + by + "}} " if by else ""
    return [(f"histogram_quantile({x}, sum by ({group}) (rate({metric}_bucket{sel}[$__rate_interval])))",
             f"{prefix}p{int(x * 100)}") for x in q]


def dashboard(uid, title, job, rows):
    panels, y, pid = [], 0, 1
    for row_title, row_panels in rows:
        panels.append({"type": "row", "title": row_title, "collapsed": False, "id": pid, "panels": [],
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
        pid += 1
        y += 1
        for i, p in enumerate(row_panels):
            p["id"] = pid
            pid += 1
            p["gridPos"] = {"h": 8, "w": 8, "x": 8 * (i % 3), "y": y + 8 * (i // 3)}
            panels.append(p)
        y += 8 * ((len(row_panels) + 2) // 3)
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "uid": uid,
        "title": title,
        "tags": ["ember"],
        "timezone": "browser",
        "schemaVersion": 37,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "job", "type": "query", "datasource": DS, "query": "label_values(ember_info, job)",
             "current": {"text": job, "value": job}, "refresh": 2, "includeAll": False, "multi": False},
            {"name": "instance", "type": "query", "datasource": DS,
             "query": 'label_values(ember_info{job="$job"}, instance)', "refresh": 2, "includeAll": True,
             "multi": True, "current": {"text": "All", "value": "$__all"}},
        ]},
        "panels": panels,
    }


S = '{job="$job",instance=~"$instance"}'


def s(extra):
    return '{job="$job",instance=~"$instance",' + extra + "}"


TRAIN = s('phase="train"')
SCRAPES = s('path="/metrics"')
ERRORS = s('code=~"4..|5.."')


TRAINING = dashboard("ember-training", "ember: training", "ember-train", [
    ("Progress", [
        panel("Samples per second", [(f"sum by (instance) (rate(ember_train_samples_total{S}[$__rate_interval]))",
                                      "{{instance}}"),
                                     (f"sum(ember_train_samples_per_second{S})", "all workers (last second)")]),
        panel("Training loss", [(f"ember_train_loss{S}", "{{instance}} moving average"),
                                (f"ember_train_epoch_loss{S}", "{{instance}} last epoch")]),
        panel("Evaluation", [(f"ember_eval_auc{S}", "AUC {{instance}}"),
                             (f"ember_eval_logloss{S}", "logloss {{instance}}")]),
        panel("Step time", quantiles("ember_train_step_seconds", S), unit="s"),
        panel("Staleness against the bound", [(f"ember_train_staleness_steps{S}", "{{instance}} ahead of slowest"),
                                              (f"max(ember_train_staleness_bound{S})", "bound")]),
        panel("Epoch and step", [(f"ember_train_epoch{S}", "epoch {{instance}}"),
                                 (f"ember_train_step{S}", "step {{instance}}")]),
    ]),
    ("Parameter server traffic", [
        panel("Pull latency", quantiles("ember_ps_pull_seconds", TRAIN), unit="s"),
        panel("Push latency", quantiles("ember_ps_push_seconds", S), unit="s"),
        panel("Bytes moved", [(f"sum(rate(ember_ps_pull_bytes_total{S}[$__rate_interval]))", "pull"),
                              (f"sum(rate(ember_ps_push_bytes_total{S}[$__rate_interval]))", "push")], unit="Bps"),
        panel("Keys per batch", [(f"ember_lookup_keys_per_batch{S}", "{{instance}}")]),
        panel("Unique keys ratio", [(f"ember_lookup_unique_ratio{S}", "{{instance}} last batch"),
                                    (f"sum(rate(ember_lookup_unique_keys_total{TRAIN}[$__rate_interval])) / "
                                     f"sum(rate(ember_lookup_keys_total{TRAIN}[$__rate_interval]))",
                                     "all workers")], unit="percentunit"),
        panel("Shard rows and skew", [(f"ember_shard_rows{S}", "shard {{shard}}"),
                                      (f"ember_shard_skew{S}", "skew (max / mean)")]),
    ]),
    ("Embedding tables", [
        panel("Rows per table", [(f"ember_table_rows{S}", "table {{table}} ({{method}})")]),
        panel("Memory against the budget", [(f"sum(ember_embedding_param_bytes{S})", "parameters"),
                                            (f"sum(ember_embedding_bytes{S})", "with optimizer state and index"),
                                            (f"max(ember_embedding_budget_bytes{S}) > 0", "budget"),
                                            (f"sum(ember_embedding_full_bytes{S})", "full fp32 tables")],
              unit="bytes"),
        panel("Compression ratio", [(f"ember_embedding_compression_ratio{S}", "all tables"),
                                    (f"ember_table_compression_ratio{S}", "table {{table}}")]),
        panel("Estimated hash collision rate", [(f"ember_table_collision_rate{S}", "table {{table}} ({{method}})")],
              unit="percentunit"),
        panel("DSL prune and regrow", [(f"sum(rate(ember_dsl_pruned_values_total{S}[$__rate_interval]))", "pruned"),
                                       (f"sum(rate(ember_dsl_regrown_values_total{S}[$__rate_interval]))", "regrown"),
                                       (f"max(ember_dsl_prune_fraction{S})", "fraction")]),
        panel("OptEmbed rows and thresholds", [(f"sum(ember_optembed_kept_rows{S})", "kept"),
                                               (f"sum(ember_optembed_pruned_rows{S})", "pruned"),
                                               (f"ember_optembed_threshold{S}", "threshold {{field}}")]),
    ]),
    ("Process", [
        panel("Resident memory", [(f"ember_process_resident_bytes{S}", "{{instance}}"),
                                  (f"ember_process_peak_resident_bytes{S}", "{{instance}} peak")], unit="bytes"),
        panel("CPU", [(f"rate(ember_process_cpu_seconds_total{S}[$__rate_interval])", "{{instance}}")],
              unit="percentunit"),
        panel("Scrapes served", [(f"sum by (code) (rate(ember_http_requests_total{SCRAPES}"
                                  f"[$__rate_interval]))", "{{code}}")], unit="reqps"),
    ]),
])

SERVING = dashboard("ember-serving", "ember: serving", "ember-serve", [
    ("Requests", [
        panel("Requests per second", [(f"sum by (path, code) (rate(ember_http_requests_total{S}[$__rate_interval]))",
                                       "{{path}} {{code}}")], unit="reqps"),
        panel("Latency", quantiles("ember_http_request_seconds", S, by="path"), unit="s"),
        panel("Error ratio", [(f'sum(rate(ember_http_requests_total{ERRORS}[$__rate_interval])) / '
                               f"sum(rate(ember_http_requests_total{S}[$__rate_interval]))", "4xx and 5xx")],
              unit="percentunit"),
        panel("Connections", [(f"ember_http_connections_open{S}", "open {{instance}}"),
                              (f"rate(ember_http_connections_evicted_total{S}[$__rate_interval])",
                               "closed for a new one /s {{instance}}"),
                              (f"rate(ember_http_connections_refused_total{S}[$__rate_interval])",
                               "refused /s {{instance}}"),
                              (f"rate(ember_http_accept_errors_total{S}[$__rate_interval])",
                               "accept errors /s {{instance}}")],
              description="At the cap (ember serve --max-connections) a new connection closes the longest "
                          "idle one; refused: every connection busy. Accept errors: out of descriptors."),
    ]),
    ("Predictions", [
        panel("Predictions per second", [(f"sum(rate(ember_serve_predictions_total{S}[$__rate_interval]))",
                                          "rows scored")]),
        panel("Rows per forward pass", [(f"sum(rate(ember_serve_batch_rows_sum{S}[$__rate_interval])) / "
                                         f"sum(rate(ember_serve_batch_rows_count{S}[$__rate_interval]))",
                                         "mean (requests batched)")]),
        panel("Predict latency (batching included)", quantiles("ember_serve_predict_seconds", S), unit="s"),
        panel("Model", [(f"ember_serve_model_rows{S}", "rows {{instance}}"),
                        (f"ember_serve_model_bytes{S}", "file bytes {{instance}}")]),
    ]),
    ("Process", [
        panel("Resident memory", [(f"ember_process_resident_bytes{S}", "{{instance}}")], unit="bytes"),
        panel("CPU", [(f"rate(ember_process_cpu_seconds_total{S}[$__rate_interval])", "{{instance}}")],
              unit="percentunit"),
        panel("Up", [(f"up{S}", "{{instance}}")]),
    ]),
])

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    for name, d in (("training.json", TRAINING), ("serving.json", SERVING)):
        with open(os.path.join(here, name), "w") as f:
            json.dump(d, f, indent=2)
            f.write("\n")
        print("wrote", os.path.join(here, name))
