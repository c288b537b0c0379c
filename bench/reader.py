#!/usr/bin/python3
"""Users' own data: reader throughput against training, and multi-hot bags against their oracle.

Reader: for a Criteo-shaped file (13 integers, 26 hex ids) and a file with two multi-hot fields
(`ember datagen ctr --multi-hot 2`, read through its schema), `build/bench/reader_bench` times one
pass of the text reader, the cache build and one pass of the binary cache (best of --passes), and
checks that both readers' batches are the same bytes. In the same run, `ember train` at the
reference DLRM shape (ember's defaults: bottom 13-512-256-64-16, top 367-512-256-1, 2 threads)
trains on the first --train-rows rows of each file from text and from the cache: training samples/s
(the job's own figure: parsing, lookups, forward, backward, updates) and test AUC, which must be
equal bit for bit.

Multi-hot: the planted teacher of `--multi-hot 2` (mean-pooled bags of Poisson(4) ids, 20k values
per field; 8 categorical fields, 4 dense), --mh-rows training rows, a 50k-row test file (and a
20k-row validation file choosing the best of 3 epochs): DLRM and Wide & Deep with the bags, the
same data with the bags' columns ignored, and the oracle.

    /usr/bin/python3 bench/reader.py [--build build] [--rows 1000000] [--train-rows 200000]
                                     [--mh-rows 500000] [--data DIR]

Writes bench/results/reader.{md,csv}, multi_hot.{md,csv} and reader.png.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("bench/reader.py: %s failed:\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout


def train(ember, config, sets, out_json):
    cmd = [ember, "train", "--config", config, "--metrics-json", out_json]
    for s in sets:
        cmd += ["--set", s]
    run(cmd)
    return json.load(open(out_json))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--train-rows", type=int, default=200000)
    ap.add_argument("--mh-rows", type=int, default=500000)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--data", default="bench/results/reader-data")
    ap.add_argument("--results", default="bench/results")
    a = ap.parse_args()
    ember = os.path.join(a.build, "launcher", "ember")
    bench = os.path.join(a.build, "bench", "reader_bench")
    os.makedirs(a.data, exist_ok=True)
    D = lambda name: os.path.join(a.data, name)  # noqa: E731

    # The data: a Criteo-shaped file and a multi-hot one, each with a test file of the same teacher.
    gen = [ember, "datagen", "ctr"]
    mh = ["--multi-hot", "2", "--fields", "8", "--dense", "4", "--max-vocab", "100000", "--multi-hot-vocab", "20000"]
    files = {
        "criteo": (D("criteo.tsv"), D("criteo_test.tsv"), [], a.rows),
        "multi_hot": (D("mh.tsv"), D("mh_test.tsv"), mh, max(a.rows, a.mh_rows)),
    }
    for name, (train_path, test_path, extra, rows) in files.items():
        for path, n, seed in ((train_path, rows, 1), (test_path, 50000, 2)):
            if not os.path.exists(path):
                run(gen + ["--rows", str(n), "--seed", str(seed), "--out", path] + extra)
    mh_valid = D("mh_valid.tsv")
    if not os.path.exists(mh_valid):
        run(gen + ["--rows", "20000", "--seed", "3", "--out", mh_valid] + mh)
    configs = {}
    for name, (train_path, test_path, extra, _) in files.items():
        cfg = D(name + ".toml")
        with open(cfg, "w") as f:
            f.write("[data]\ntrain = \"%s\"\ntest = \"%s\"\ncache_dir = \"%s\"\n" % (train_path, test_path, D("caches")))
            if extra:
                f.write("format = \"tsv\"\nschema = \"%s.schema.toml\"\n" % train_path)
            f.write("[train]\nbatch_size = 2048\nthreads = 2\nprogress = \"log\"\n")
        configs[name] = cfg

    rows_out, md = [], []
    for name, cfg in configs.items():
        print("reader: %s" % name, flush=True)
        r = json.loads(run([bench, "--config", cfg, "--passes", str(a.passes)]).strip().splitlines()[-1])
        limit = ["data.max_rows=%d" % a.train_rows]
        text = train(ember, cfg, limit, D(name + "-text.json"))
        cache = train(ember, cfg, limit + ["data.cache=true"], D(name + "-cache.json"))
        row = {
            "data": name,
            "rows": r["rows"],
            "text_rows_per_s": round(r["text_rows_per_s"]),
            "cache_rows_per_s": round(r["cache_rows_per_s"]),
            "cache_over_text": round(r["cache_rows_per_s"] / r["text_rows_per_s"], 1),
            "build_rows_per_s": round(r["build_rows_per_s"]),
            "cache_mib": round(r["cache_bytes"] / 2**20, 1),
            "identical_batches": r["identical"],
            "train_text_samples_per_s": round(text["samples_per_sec"]),
            "train_cache_samples_per_s": round(cache["samples_per_sec"]),
            "cache_over_training": round(r["cache_rows_per_s"] / cache["samples_per_sec"], 1),
            "text_over_training": round(r["text_rows_per_s"] / text["samples_per_sec"], 1),
            "auc_text": text["auc"],
            "auc_cache": cache["auc"],
        }
        rows_out.append(row)
    benchlib.write_csv(os.path.join(a.results, "reader.csv"), rows_out)
    md = ["# Reader throughput", "",
          "`build/bench/reader_bench` (best of %d passes each) on %d-row files: `criteo` is the Criteo layout "
          "(13 integers, 26 hex ids), `multi_hot` a TSV read through its schema (4 dense, 8 categorical, 2 "
          "multi-hot fields of mean-pooled bags). Text rows/s is one pass of the text reader (parsing into "
          "batches of 2048), cache rows/s one pass of the binary cache (mmap, copying into the same batches); "
          "`same batches` compares every byte of both readers' batches. Training samples/s is `ember train` at "
          "the reference DLRM shape (ember's defaults, batch 2048, 2 threads) on the first %d rows of the "
          "same file, from text and from the cache (the job's own rate: reading, lookups, forward, backward, "
          "updates), and the test AUC of both runs." % (a.passes, a.rows, a.train_rows), "",
          "| data | rows | text rows/s | cache rows/s | cache / text | cache MiB | same batches | training samples/s "
          "(text / cache) | cache / training | text / training | test AUC text | test AUC cache |",
          "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows_out:
        md.append("| %s | %d | %d | %d | %.1f× | %.1f | %s | %d / %d | %.1f× | %.1f× | %.5f | %.5f |" % (
            r["data"], r["rows"], r["text_rows_per_s"], r["cache_rows_per_s"], r["cache_over_text"], r["cache_mib"],
            "yes" if r["identical_batches"] else "**no**", r["train_text_samples_per_s"],
            r["train_cache_samples_per_s"], r["cache_over_training"], r["text_over_training"], r["auc_text"],
            r["auc_cache"]))
    open(os.path.join(a.results, "reader.md"), "w").write("\n".join(md) + "\n")
    print("\n".join(md))

    # Multi-hot against its oracle, and without the bags.
    mh_train, mh_test, _, _ = files["multi_hot"]
    oracle = json.load(open(mh_test + ".oracle.json"))["auc"]
    no_bags = D("no_bags.schema.toml")
    with open(mh_train + ".schema.toml") as f:
        open(no_bags, "w").write(f.read().replace("role = \"multi_hot\"", "role = \"ignore\""))
    mh_rows = []
    for model in ("dlrm", "wide_deep"):
        for bags, schema in (("yes", mh_train + ".schema.toml"), ("ignored", no_bags)):
            for epochs in (1, 3):
                sets = ["data.max_rows=%d" % a.mh_rows, "model.name=\"%s\"" % model, "data.schema=\"%s\"" % schema,
                        "train.epochs=%d" % epochs, "data.cache=true"]
                if epochs > 1:
                    sets.append("data.valid=\"%s\"" % mh_valid)  # the best epoch, chosen on its own file
                m = train(ember, configs["multi_hot"], sets, D("mh-%s-%s-%d.json" % (model, bags, epochs)))
                mh_rows.append({"model": model, "bags": bags, "epochs": epochs, "auc": m["auc"],
                                "gap_to_oracle": round(oracle - m["auc"], 4), "oracle": oracle})
                print(mh_rows[-1], flush=True)
    benchlib.write_csv(os.path.join(a.results, "multi_hot.csv"), mh_rows)
    md = ["# Multi-hot bags against the oracle", "",
          "`ember datagen ctr --multi-hot 2 --fields 8 --dense 4 --max-vocab 100000 --multi-hot-vocab 20000` "
          "(the default teacher; two fields of Poisson(4)-long bags whose mean effect is planted), %d "
          "training rows, 50k test rows, defaults otherwise; `ignored` reads the same files with the bags' "
          "columns as `role = \"ignore\"`. 3 epochs keep the best of them on a 20k-row validation file." % a.mh_rows, "",
          "| model | bags | epochs | test AUC | oracle − AUC |", "|---|---|---:|---:|---:|"]
    for r in mh_rows:
        md.append("| %s | %s | %d | %.4f | %.4f |" % (r["model"], r["bags"], r["epochs"], r["auc"], r["gap_to_oracle"]))
    md.append("")
    md.append("Oracle (the teacher's own probabilities) test AUC %.4f; %d training rows." % (oracle, a.mh_rows))
    open(os.path.join(a.results, "multi_hot.md"), "w").write("\n".join(md) + "\n")
    print("\n".join(md))

    plt = benchlib.pyplot()
    if plt:
        fig, ax = plt.subplots(figsize=(8, 4))
        labels, values, colors = [], [], []
        for r in rows_out:
            for what, key, color in (("text reader", "text_rows_per_s", "#888"), ("cache", "cache_rows_per_s", "#c0392b"),
                                     ("training", "train_cache_samples_per_s", "#2c3e50")):
                labels.append("%s\n%s" % (r["data"], what))
                values.append(r[key])
                colors.append(color)
        ax.bar(range(len(values)), values, color=colors)
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("rows / s (log)")
        ax.set_title("Reading against training (reference DLRM, batch 2048), same run")
        fig.tight_layout()
        fig.savefig(os.path.join(a.results, "reader.png"), dpi=110)


if __name__ == "__main__":
    main()
