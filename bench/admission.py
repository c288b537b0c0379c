#!/usr/bin/python3
"""Feature admission on long-tailed data: DLRM with full tables on `ember datagen ctr` data (Zipf
1.1 values, vocabularies up to 2M) with embedding.admit_after = k for k = 1 (no admission), 2, 5
and 10, counted by the default count-min sketch; plus k = 5 with exact counts, with the hashed
fallback, with expiry, and k = 1 against k = 5 over 2 epochs. Writes bench/results/admission.{md,csv,png}.

    python3 bench/admission.py [--build build] [--rows 1000000]

Memory is what the PS holds after training: parameter bytes (4 per weight) and resident bytes
(optimizer state, index and the admission counters included).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import datagen, pyplot, write_csv  # noqa: E402
from compression import run  # noqa: E402

CONFIG = """[data]
train = "{train}"
test = "{test}"
format = "criteo"
[model]
name = "dlrm"
bottom_mlp = [128, 64, 16]
top_mlp = [128, 64]
[embedding]
method = "full"
dim = 16
[train]
epochs = 1
batch_size = 1024
"""

RUNS = [("k=1 (no admission)", ["embedding.admit_after=1"]),
        ("k=2", ["embedding.admit_after=2"]),
        ("k=5", ["embedding.admit_after=5"]),
        ("k=10", ["embedding.admit_after=10"]),
        ("k=5, exact counts", ["embedding.admit_after=5", "embedding.admit_sketch_width=0"]),
        ("k=5, hashed fallback (2^16 rows)",
         ["embedding.admit_after=5", 'embedding.fallback="hash"', "embedding.fallback_rows=65536"]),
        ("k=5, expire after 200 steps", ["embedding.admit_after=5", "embedding.expire_after_steps=200"]),
        # A second epoch is where the long tail hurts: one-off values' rows are fitted to their example.
        ("k=1, 2 epochs", ["embedding.admit_after=1", "train.epochs=2"]),
        ("k=5, 2 epochs", ["embedding.admit_after=5", "train.epochs=2"])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--data", default="bench/results/admission-data")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--reuse", action="store_true", help="reuse the metrics of runs already in --data")
    a = ap.parse_args()
    ember = os.path.join(a.build, "launcher", "ember")
    os.makedirs(a.data, exist_ok=True)
    train = datagen(ember, os.path.join(a.data, "train.tsv"), a.rows, seed=1)
    test = datagen(ember, os.path.join(a.data, "test.tsv"), a.rows // 5, seed=2)
    config = os.path.join(a.data, "dlrm.toml")
    with open(config, "w") as f:
        f.write(CONFIG.format(train=os.path.abspath(train), test=os.path.abspath(test)))
    results = []
    for i, (label, sets) in enumerate(RUNS):
        metrics, log = os.path.join(a.data, f"run{i}.json"), os.path.join(a.data, f"run{i}.log")
        if a.reuse and os.path.exists(metrics):
            m, err, secs = json.load(open(metrics)), None, 0.0
        else:
            m, err, secs = run(ember, config, sets, metrics, log)
        if not m:
            sys.exit(f"{label}: {err}")
        results.append({"run": label, "auc": m["auc"], "logloss": m["logloss"], "rows": m["table_rows"],
                        "param_bytes": m["param_bytes"], "resident_bytes": m["table_bytes"],
                        "seconds": round(secs, 1)})
        print(f"{label:34s} AUC {m['auc']:.5f}  rows {m['table_rows']:9d}  resident {m['table_bytes'] / 2**20:7.1f} MiB",
              flush=True)
    write_csv(os.path.join(a.out, "admission.csv"), results)
    base = results[0]
    md = [f"# Feature admission: DLRM on datagen ctr ({a.rows} train rows, {a.rows // 5} test rows)", "",
          "Full tables, dim 16, 1 epoch unless stated, batch 1024, row-wise Adagrad. k = sightings before a value gets its own "
          "row (one shared out-of-vocabulary row per field until then); counts from a 4 x 65536 count-min sketch per "
          "table unless stated. Resident = rows, optimizer state, index and counters.", "",
          "| run | test AUC | Δ AUC | rows | params | resident | of k=1 |", "|---|---|---|---|---|---|---|"]
    for r in results:
        md.append(f"| {r['run']} | {r['auc']:.5f} | {r['auc'] - base['auc']:+.5f} | {r['rows']} | "
                  f"{r['param_bytes'] / 2**20:.1f} MiB | {r['resident_bytes'] / 2**20:.1f} MiB | "
                  f"{r['resident_bytes'] / base['resident_bytes']:.3f} |")
    text = "\n".join(md) + "\n"
    with open(os.path.join(a.out, "admission.md"), "w") as f:
        f.write(text)
    print(text)
    plt = pyplot()
    if not plt:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ks = results[:4]
    ax.plot([r["resident_bytes"] / 2**20 for r in ks], [r["auc"] for r in ks], "o-", color="#2980b9")
    for r in ks:
        ax.annotate(r["run"].split(" ")[0], (r["resident_bytes"] / 2**20, r["auc"]), textcoords="offset points",
                    xytext=(5, 5))
    ax.set_xlabel("embedding memory held (MiB: rows, optimizer state, index, counters)")
    ax.set_ylabel("test AUC")
    ax.set_title("DLRM with feature admission after k sightings")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "admission.png"), dpi=110)


if __name__ == "__main__":
    main()
