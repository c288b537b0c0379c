#!/usr/bin/python3
"""Learning on long-tailed data: every CTR model at 1, 3 and 5 epochs, before and after the
multi-epoch remedies, beside the linear reference and the oracle, and a learning curve.

Data: `ember datagen ctr --teacher longtail` (every value's effect as strong as a frequent one's,
rare values included), a training file per size, one validation file (20k rows) and one test file
(50k rows) from other seeds of the same teacher. Every run is `ember train --metrics-json` with
the defaults unless named; "epochs n" is its own run of n epochs with per-epoch validation on the
validation file; the test AUC is the model the job ends with (its best validation epoch, which a
one-worker job keeps even without checkpoint.dir), and the validation AUC after each epoch shows
what the epochs themselves do. The linear reference is
bench/linear_reference.py (scikit-learn L2 logistic regression on hashed one-hot features, C
chosen on the validation file) on the same files, in the same run.

    /usr/bin/python3 bench/quality.py [--build build] [--rows 300000] [--curve 100000,300000,1000000,3000000]
                                      [--models dlrm,deepfm,dcn_v2,wide_deep,fm,lr] [--data DIR]
                                      [--teacher-options "--teacher-seed 7 --first-order-scale 0.3 ..."]

Writes bench/results/quality.{md,csv} and quality-curve.png (test AUC against training rows); with
--teacher-options, quality-<tag>.* and the data in quality-data-<tag>, <tag> a hash of the options.
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

# The behaviour before this benchmark's remedies: no row reset, constant dense rate, and the
# first-order weights on row-wise Adagrad at the embedding rate.
BEFORE = ["train.reset_rows=\"never\"", "train.lr_decay=1.0", "embedding.initial_accumulator=0.0",
          "linear.optimizer=\"rowwise_adagrad\"", "linear.lr=0.05"]
# The other of the two multi-epoch regimes (docs/quality.md): the rows restarting each epoch while
# the dense model trains on (MEDA) where the default carries them over against the first epoch's
# dense layers, and carried over for DeepFM and FM, whose default restarts them.
RESTARTING = ["train.reset_rows=\"each_epoch\""]
CARRIED = ["train.reset_rows=\"never\""]


def other_regime(model):
    return CARRIED if model in ("deepfm", "fm") else RESTARTING


def gen(ember, path, rows, seed, teacher_options=()):
    if not os.path.exists(path):
        subprocess.run([ember, "datagen", "ctr", "--teacher", "longtail", *teacher_options, "--rows", str(rows),
                        "--seed", str(seed), "--out", path], check=True, stdout=subprocess.DEVNULL)
    return json.load(open(path + ".oracle.json"))


def train(ember, data, train_file, key, sets):
    metrics = os.path.join(data, key + ".json")
    log = os.path.join(data, key + ".log")
    if os.path.exists(metrics) and os.path.exists(log):
        return json.load(open(metrics)), valid_curve(log), 0.0
    cmd = [ember, "train", "--config", "/dev/null", "--metrics-json", metrics,
           "--set", f"data.train=\"{train_file}\"", "--set", f"data.valid=\"{data}/valid.tsv\"",
           "--set", f"data.test=\"{data}/test.tsv\"", "--set", "train.progress=\"log\"",
           "--set", "train.log_interval_s=120"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.time()
    with open(log, "w") as f:
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: see {log}")
    return json.load(open(metrics)), valid_curve(log), time.time() - t0


def valid_curve(log):
    """The validation AUC after each epoch, from the job's log."""
    return [float(m.group(1)) for m in re.finditer(r"epoch \d+: validation AUC ([0-9.]+)", open(log).read())]


def linear_reference(data, train_file, key, grid="0.03,0.1,0.3"):
    out = os.path.join(data, key + ".json")
    if not os.path.exists(out):
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run([sys.executable, os.path.join(here, "linear_reference.py"), "--train", train_file,
                        "--valid", f"{data}/valid.tsv", "--test", f"{data}/test.tsv", "--grid", grid,
                        "--out", out], check=True, stdout=subprocess.DEVNULL)
    return json.load(open(out))


def linear_references(data, files, sizes, grid_up_to):
    """The linear reference at every size: C tuned on the grid up to `grid_up_to` training rows;
    above it (where one liblinear fit takes tens of minutes) at the C chosen at the largest
    tuned size."""
    ref = {}
    for n in sorted(sizes):
        tuned = [m for m in ref if m <= grid_up_to]
        grid = "0.03,0.1,0.3" if n <= grid_up_to or not tuned else str(ref[max(tuned)]["C"])
        ref[n] = linear_reference(data, files[n], f"linear-{n}", grid)
    return ref


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--rows", type=int, default=300000)
    ap.add_argument("--epochs", default="1,3,5")
    ap.add_argument("--models", default="dlrm,deepfm,dcn_v2,wide_deep,fm,lr")
    ap.add_argument("--curve", default="100000,300000,1000000,3000000", help="training sizes of the learning curve")
    ap.add_argument("--curve-models", default="dlrm,deepfm,dcn_v2,wide_deep,fm,lr")
    ap.add_argument("--linear-grid-up-to", type=int, default=1000000,
                    help="tune the linear reference's C up to this many training rows; above, reuse the C chosen there")
    ap.add_argument("--curve-epochs", type=int, default=3)
    ap.add_argument("--teacher-options", default="",
                    help="more `ember datagen ctr` options for every file, e.g. \"--teacher-seed 7 --zipf 1.05\"; "
                         "the files and the report then carry a tag of their own")
    ap.add_argument("--data", help="data and run cache (default bench/results/quality-data[-<tag>])")
    ap.add_argument("--out", default="bench/results")
    a = ap.parse_args()
    teacher = a.teacher_options.split()
    # Another teacher's files and report must not mix with the default teacher's cached ones.
    suffix = "-" + hashlib.sha1(" ".join(teacher).encode()).hexdigest()[:8] if teacher else ""
    a.data = a.data or f"bench/results/quality-data{suffix}"
    ember = os.path.join(a.build, "launcher", "ember")
    os.makedirs(a.data, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    sizes = sorted({a.rows} | {int(s) for s in a.curve.split(",") if s})
    terms = gen(ember, f"{a.data}/test.tsv", 50000, 2, teacher)
    oracle = terms["auc"]
    gen(ember, f"{a.data}/valid.tsv", 20000, 3, teacher)
    files = {n: f"{a.data}/train-{n}.tsv" for n in sizes}
    for n in sizes:
        gen(ember, files[n], n, 1, teacher)
    epochs = [int(e) for e in a.epochs.split(",")]
    rows = []

    def record(model, n, ep, variant, result):
        m, curve, secs = result
        rows.append({"model": model, "rows": n, "epochs": ep, "variant": variant, "auc": m["auc"],
                     "logloss": m["logloss"], "valid_auc_by_epoch": " ".join(f"{v:.4f}" for v in curve),
                     "seconds": round(secs, 1)})
        print(f"{model:9s} {n:8d} rows {ep} epochs {variant:7s} test AUC {m['auc']:.5f} "
              f"(validation by epoch {rows[-1]['valid_auc_by_epoch']})", flush=True)

    for model in a.models.split(","):
        for ep in epochs:
            for variant, extra in (("now", []), ("other", other_regime(model)), ("before", BEFORE)):
                if variant == "before" and ep != epochs[-1]:
                    continue  # the report shows the behaviour before by epoch, from the longest run
                if variant == "other" and ep == 1:
                    continue  # one epoch: the same run as now
                sets = [f"model.name=\"{model}\"", f"train.epochs={ep}"] + extra
                record(model, a.rows, ep, variant,
                       train(ember, a.data, files[a.rows], f"{model}-{a.rows}-e{ep}-{variant}", sets))
    for model in a.curve_models.split(","):
        for n in sizes:
            if n == a.rows and a.curve_epochs in epochs:
                continue
            sets = [f"model.name=\"{model}\"", f"train.epochs={a.curve_epochs}"]
            record(model, n, a.curve_epochs, "now",
                   train(ember, a.data, files[n], f"{model}-{n}-e{a.curve_epochs}-now", sets))
    ref = linear_references(a.data, files, sizes, a.linear_grid_up_to)
    for n in sizes:
        rows.append({"model": "sklearn-lr", "rows": n, "epochs": "", "variant": f"C={ref[n]['C']}",
                     "auc": ref[n]["auc"], "logloss": ref[n]["logloss"],
                     "valid_auc_by_epoch": f"{ref[n]['valid_auc']:.4f}", "seconds": ""})

    fields = ["model", "rows", "epochs", "variant", "auc", "logloss", "valid_auc_by_epoch", "seconds"]
    benchlib.write_csv(os.path.join(a.out, f"quality{suffix}.csv"), rows, fields)
    at = {(r["model"], r["rows"], r["epochs"], r["variant"]): r for r in rows}
    md = [f"# Long-tail teacher{' (' + a.teacher_options + ')' if teacher else ''}: test AUC by model and epochs "
          f"({a.rows} training rows, oracle {oracle:.4f})", "",
          "| model | " + " | ".join(f"{e} epoch{'s' if e > 1 else ''}" for e in epochs) + " |",
          "|---|" + "---:|" * len(epochs)]
    for model in a.models.split(","):
        now = [at.get((model, a.rows, e, "now")) for e in epochs]
        other = [at.get((model, a.rows, e, "other")) for e in epochs]
        md.append(f"| {model} | " + " | ".join(f"{r['auc']:.4f}" if r else "" for r in now) + " |")
        md.append(f"| {model}, " + ", ".join(other_regime(model)) + " | " +
                  " | ".join(f"{r['auc']:.4f}" if r else "" for r in other) + " |")
    md.append(f"| sklearn L2 LR (C={ref[a.rows]['C']}) | {ref[a.rows]['auc']:.4f} |" + " |" * (len(epochs) - 1))
    if "auc_without_pairs" in terms:
        md += ["", f"The oracle's logit by its terms on the test file: all of it {oracle:.4f}; without the categorical "
               f"pairs {terms['auc_without_pairs']:.4f}; the first-order terms alone {terms['auc_first_order']:.4f}."]
    md += ["", "Validation AUC after each epoch of the longest runs: now, with the other regime ("
           + ", ".join(RESTARTING) + "; for deepfm and fm " + ", ".join(CARRIED)
           + ") and with the behaviour before the remedies (" + ", ".join(BEFORE) + "):", "",
           "| model | now | the other regime | before |", "|---|---|---|---|"]
    for model in a.models.split(","):
        last = epochs[-1]
        by = [at.get((model, a.rows, last, v), {}).get("valid_auc_by_epoch", "") for v in ("now", "other", "before")]
        md.append(f"| {model} | " + " | ".join(by) + " |")
    md += ["",
           f"## Learning curve ({a.curve_epochs} epochs; test AUC)", "",
           "| training rows | " + " | ".join(a.curve_models.split(",")) + " | sklearn L2 LR | oracle |",
           "|---:|" + "---:|" * (len(a.curve_models.split(",")) + 2)]
    for n in sizes:
        vals = [at.get((m, n, a.curve_epochs, "now")) for m in a.curve_models.split(",")]
        md.append(f"| {n} | " + " | ".join(f"{v['auc']:.4f}" if v else "" for v in vals) +
                  f" | {ref[n]['auc']:.4f} | {oracle:.4f} |")
    with open(os.path.join(a.out, f"quality{suffix}.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    plt = benchlib.pyplot()
    if plt:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for m in a.curve_models.split(","):
            pts = [(n, at[(m, n, a.curve_epochs, "now")]["auc"]) for n in sizes if (m, n, a.curve_epochs, "now") in at]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"ember {m}")
        ax.plot(sizes, [ref[n]["auc"] for n in sizes], marker="s", linestyle="--", label="sklearn L2 LR")
        ax.axhline(oracle, color="k", linestyle=":", label="oracle")
        ax.set_xscale("log")
        ax.set_xlabel("training rows")
        ax.set_ylabel("test AUC")
        ax.set_title("long-tail teacher: learning curve")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, f"quality{suffix}-curve.png"), dpi=120)


if __name__ == "__main__":
    main()
