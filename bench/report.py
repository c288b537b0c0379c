#!/usr/bin/python3
"""Writes docs/performance.md and its plots from the results bench/run left in bench/results.

    /usr/bin/python3 bench/report.py [--results bench/results] [--docs docs] [--build build]

Sections: the machine; ember vs the PyTorch reference (throughput against batch size, AUC);
embedding kernels against the random-gather limit; PS against a plain socket; test AUC against
embedding memory per method; then the tables of the other benchmarks that ran.
"""
import argparse
import csv
import datetime
import os
import platform
import re
import shutil
import subprocess

import benchlib

OTHER = [("sessions", "Session recommendation"), ("admission", "Feature admission"), ("cluster", "Cluster (mpirun) scaling"),
         ("serving", "Serving"), ("monitoring", "Monitoring overhead"), ("export_parity", "Export parity"),
         ("checkpoint", "Checkpoint and restore"), ("reader", "Reading users' data: text, the binary cache, training"),
         ("multi_hot", "Multi-hot bags against their oracle")]


PROFILE = """
`perf record -g` on `ember train` (the DLRM above, batch 2048) and on `ps_bench`, this machine:

1. **Allocation churn.** 22 % of the training samples were in the kernel (page faults, IRQ
   accounting) plus `memset`: glibc's malloc hands the large buffers of every step (LibTorch's
   activations and gradients, pulled rows, pushed gradients, wire buffers) back to the kernel and
   faults them in again at the next step. ember's binaries now link tcmalloc (Debian's
   `libtcmalloc-minimal4`, optional in CMake): A/B in one sitting, training samples/s went from
   31-39k to 44-53k at batch 128 and from 38-49k to 50-72k at batch 2048. jemalloc (LD_PRELOAD)
   was 2-3x slower here.
2. **BLAS threads.** OpenBLAS's pthread workers spin in `sched_yield` between LibTorch's GEMMs
   (12 % of samples). One BLAS thread, a shorter spin (`OPENBLAS_THREAD_TIMEOUT=4`) or the
   OpenMP build of OpenBLAS measured no faster at batch 2048, and one BLAS thread 30 % slower on
   the demo's wider MLP (bottom 512-256-64): the spinning uses otherwise idle time. Left as is.
3. **Embedding pull.** The lookup is bound by memory-level parallelism: the random-gather limit
   moves one 64-byte line per row, the pull two random accesses (the index, then the row).
   perf shows the row prefetches stalling on full miss buffers. Rows are now stored with their
   keys, behind an index of tags and slot numbers (6-7.5 bytes a row instead of 24-48): full
   tables went from 1.5x to 1.07-1.23x their weights and state. The pull moved with it, A/B in
   one sitting on `embedding_bench`: 0.31-0.38 of the limit against 0.29-0.34 at 1M rows, where
   the small index stays in the last-level cache, and 0.26-0.28 against 0.27-0.35 at 4M rows,
   where one 76-byte entry in eight (with its key) spans three cache lines: prefetching that
   middle line too brought the 4M-row pull to 0.31-0.36 (against 0.28-0.29 without it, A/B in one
   sitting). Rows inline in the index (one random access) would cost the whole entry's
   load-factor slack in memory.
4. **PS over TCP.** Session 15's profile (`perf`, `strace -c` on `ps_bench`) found the RPC's
   time outside the bytes: per request about 9 `futex` calls (two threads sharing each server's
   io_context woke each other for every completion), 4 `epoll_ctl`, 2 `timerfd_settime` (each
   read re-armed its deadline timer, and the cancelled wait ran a handler), reads of a 24-byte
   header apart from its payload, and zero-filled `std::string` resizes of every request and
   reply (`memset`). Changed: wire buffers that grow without zeroing (`ByteBuffer`), pushes
   decoded in place from the request (copied only where a slice is misaligned), one io_context
   per server thread (a connection's handlers stay on its thread), small frames read whole with
   their header, a deadline timer moved only when the deadline comes sooner, and a client that
   serves every server's socket at once with `poll` (a reply is read while other requests are
   still being written). `strace -c` over the same run: `futex` 75641 → 37 calls,
   `epoll_ctl` 29955 → 35, `timerfd_settime` 16026 → 0. A/B in one sitting, three runs each, 2
   servers, remote / plain socket (remote / (plain + shard work)):

   | unique keys per step | before | after |
   |---:|---|---|
   | 1000 | 0.23-0.44 (0.29-0.52) | 0.58-0.87 (0.67-1.04) |
   | 4000 | 0.36-0.50 (0.50-0.62) | 0.55-0.70 (0.75-0.86) |
   | 16000 | 0.22-0.46 (0.36-0.58) | 0.38-0.78 (0.64-0.95) |
   | 64000 | 0.26-0.37 (0.40-0.55) | 0.44-0.59 (0.67-0.84) |

   What is left is the shard work itself (as much CPU as the transfer at these sizes, on the same
   two cores as the client and the transfer) and the client's gather of each server's gradients
   and scatter of its rows into the caller's order (a copy of every row each way).

5. **Serving small passes.** `perf` on `ember serve` under single-row load (16 connections,
   about 8 rows a forward pass): OpenBLAS's `sgemm_incopy` (repacking a layer's weights at every
   call) took as many samples as its `sgemm_kernel` (16 % each). Passes of at most 16 rows now
   run ember's AVX-512 fp32 product on weights packed once at load (models/dense_linear.h), at
   the core's FMA rate (`perf annotate`: the loop is the FMAs and broadcasts). A `Predict` of 8
   rows took 110 µs against 180 µs (`build/bench/serving_forward_bench`), and the server answered
   single rows at p99 0.89 ms against 1.44 ms (*Serving*, below).

6. **Training at the reference shape.** Timers around every product of a training step (batch
   2048) put the matrix products at 34 ms of a 44 ms step; LibTorch's autograd profiler put most
   of the rest in the glue around them: each Linear's copy of its bias into the output and the
   ReLU's separate pass and backward (about 5 ms a step together), the two cats around the
   interaction and the contiguous copies of their gradients' slices (about 2.5 ms), and the first
   layer's product on 13 inputs, which BLAS runs at a fifth of its speed on wide ones (1.5 ms
   forward). Now, in models/fused_ops.h, with a test of each against LibTorch's form:
   `LinearActivation` (the product, then bias and ReLU in place; backward, the mask and the
   bias's gradient in one pass over 64-column blocks), used by every CTR model's MLP while
   training; ember's own loops for layers of at most 16 inputs (forward in one pass; backward,
   the mask, the bias's and the weight's gradients in one pass that keeps the masked gradient
   only where the input needs one); `DotInteractionWithDense` (DLRM's top-MLP input, x and the
   pairs, written at once, so no cats); and `DotInteraction` building 16 pairs at a time in
   registers (an AVX-512 clone chosen at load time). A/B in one sitting: the interaction took
   1.18 ms forward and 1.06-1.56 ms backward against 2.22 and 3.6 ms (B 2048, 27 vectors of 16);
   the first layer 0.36-0.40 ms forward and 0.42-0.59 ms backward against 1.12-1.49 and
   2.36-3.08 ms for LibTorch's addmm and ReLU (in a slow spell of the machine; 0.62-0.71 and
   1.35-1.98 ms in a faster one); both MLPs' forward and backward 39-52 ms against 40-57 ms at batch 2048 and
   3.9-4.3 ms against 4.2-4.8 ms at batch 128; `ember train` 45.5-46.3k samples/s against
   41.3-42.9k at batch 2048 with the interaction alone, then 31.8-33.1k against 29.4-30.6k at
   batch 128 with the dense input's pairs in one operation. Tried and dropped, no change
   measurable: gradients dropped instead of zeroed before each step, and the next batch's keys
   prepared during the step instead of after its push.
"""


REFERENCE_TEXT = (
    "Repeats in one run move by 10-30 % on this VM, and the compute limit with them (the same products "
    "measured 97 to 176 GFLOP/s on different days), which is why each ratio is taken within one repeat. Profiling "
    "(`perf`, per-phase timers in the trainer, LibTorch's autograd profiler) found LibTorch's Adam step at 2.3 ms "
    "a step (ten tensor operations per parameter), the interaction's `bmm` plus triangle gather at about 20 ms a "
    "step at batch 2048, and then the glue around the matrix products (*What profiling found*, item 6). "
    "`FusedAdam` (workers/fused_adam.h: Adam's update in one loop per parameter, with Adam's own state, so "
    "checkpoints are unchanged), `DotInteraction` and `DotInteractionWithDense` (the lower-triangle dot products "
    "in one pass per sample, written straight into the top MLP's input) and `LinearActivation` (each layer's "
    "product, bias and ReLU, and their backward, in two passes besides the products; layers of at most 16 inputs "
    "on ember's own loops) remove them (models/fused_ops.h; tests compare each with LibTorch's form). Before the "
    "first two ember ran at 1.64x the reference at batch 128 and 1.31x at batch 2048 (one measurement at 100000 "
    "rows); before the glue went (this page's run at b713b30) at 2.31x and 1.27x. What separates ember from the "
    "limit at batch 2048 is the work besides the products (parsing, lookups, the interaction, the optimizer), "
    "which on 2 cores shares them with the products, and the products themselves run slower between other work "
    "than back to back (34 ms a step in training against 31 ms alone, timed around each product).")

MEMORY_TEXT = (
    "`embedding_bench --memory OPTIMIZER` (through `bench/embedding_throughput.py`), one process per table: a "
    "full table of 16-float rows built by pulls of 65536 keys, the growth of the process's resident set "
    "against what its rows hold (weights + optimizer state), and the store's bytes by part, per row. An entry "
    "is the row's key (8 bytes) beside its weights and state, in blocks of 4096; the index (embedding/"
    "slot_index.h) is 64-byte groups of 12 one-byte hash tags and 12 four-byte slot numbers, at a load between "
    "0.72 and 0.9 (it grows by 1.25x, into pages of its own that go back to the system when outgrown).")


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001 - a description, best effort
        return ""


def machine():
    lscpu = sh("lscpu")
    field = lambda k: (re.search(rf"^{k}:\s*(.+)$", lscpu, re.M) or [None, "?"])[1]  # noqa: E731
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2 / 1048576}' /proc/meminfo")
    blas = sh("update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/ {print $2}'")
    torch = sh("/usr/bin/python3 -c 'import torch; print(torch.__version__)'")
    cxx = sh("c++ --version | head -1")
    rev = sh("git rev-parse --short HEAD")
    cpus, threads = field(r"CPU\(s\)"), field(r"Thread\(s\) per core")
    return [("CPU", f"{field('Model name')}, {cpus} cores ({threads} thread per core)"),
            ("Memory", mem), ("Kernel", f"{platform.system()} {platform.release()}"),
            ("Virtualised", field("Hypervisor vendor") if "Hypervisor vendor" in lscpu else
             ("yes (hypervisor flag)" if " hypervisor " in lscpu else "no")),
            ("Compiler", cxx), ("BLAS", blas or "?"), ("PyTorch (reference)", torch or "absent"),
            ("ember", rev), ("Date", datetime.date.today().isoformat())]


def save(fig, ax, title, path, legend=True):
    ax.set_title(title)
    if legend:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def read(path):
    return list(csv.DictReader(open(path))) if os.path.exists(path) else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="bench/results")
    ap.add_argument("--docs", default="docs")
    a = ap.parse_args()
    R = lambda name: os.path.join(a.results, name)  # noqa: E731
    plt = benchlib.pyplot()
    out = ["# Performance", "",
           "Written by `bash bench/run` (builds, runs every benchmark, then `bench/report.py`); each ratio "
           "compares figures measured in the same run on the machine below. These VMs are noisy: "
           "repeated runs move single figures by 10-20 %, ratios less.", "", "## The machine", "",
           "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in machine()]

    ref = read(R("reference.csv"))
    if ref:
        out += ["", "## ember against a PyTorch reference DLRM", "",
                "Two shapes of the same DLRM: `reference`, the Criteo Kaggle DLRM people run (bottom MLP "
                "13-512-256-64-16, pairwise dot interaction, top MLP 367-512-256-1; ember's default), and `small` "
                "(bottom 13-64-16, top 367-64-32-1), where per-op overhead dominates. The same synthetic data "
                "(`ember datagen ctr --max-vocab 200000`), element-wise Adagrad on the embeddings (lr 0.05; PyTorch: "
                "`nn.EmbeddingBag` with sparse gradients) and Adam on the dense part (lr 1e-3), one epoch, 2 threads "
                "each, both with OpenBLAS and `OMP_WAIT_POLICY=PASSIVE` (PyTorch's best setting here: without it, it "
                "runs at a third of its speed). `bench/reference_dlrm.py` reads and numbers ids before its clock "
                "starts; ember's timer includes reading and parsing the file. Training samples/s (median of the "
                "repeats), then test AUC; the compute limit is the shape's matrix products alone (forward, weight and "
                "input gradients, PyTorch on the same BLAS and threads), measured after each pair of runs. In a repeat "
                "each side runs twice back to back and keeps its faster run (this VM's noise only slows runs down, and a "
                "run right after the other side's process sometimes goes at half speed); each ratio is the median of "
                "the ratios within a repeat.", "",
                open(R("reference.md")).read().split("\n", 2)[2].strip(), "", REFERENCE_TEXT, "",
                "![throughput](performance-throughput.png)"]
        if plt:
            fig, ax = plt.subplots(figsize=(7, 4))
            for shape, color in (("reference", "#c0392b"), ("small", "#2980b9")):
                rs = [r for r in ref if r.get("shape", "small") == shape]
                if not rs:
                    continue
                b = [int(r["batch"]) for r in rs]
                ax.plot(b, [float(r["ember_samples_per_sec"]) for r in rs], "o-", color=color, label=f"ember, {shape}")
                ax.plot(b, [float(r["reference_samples_per_sec"]) for r in rs], "s--", color=color, alpha=0.5,
                        label=f"PyTorch, {shape}")
                if "limit_samples_per_sec" in rs[0]:
                    ax.plot(b, [float(r["limit_samples_per_sec"]) for r in rs], ":", color=color, alpha=0.4,
                            label=f"compute limit, {shape}")
                for r in rs:
                    ax.annotate(f"{float(r['speedup']):.2f}x", (int(r["batch"]), float(r["ember_samples_per_sec"])),
                                textcoords="offset points", xytext=(0, 6), ha="center")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("batch size")
            ax.set_ylabel("training samples / s")
            save(fig, ax, "DLRM training throughput, same machine, same run", os.path.join(a.docs, "performance-throughput.png"), legend=True)

    emb = read(R("embedding_throughput.csv"))
    if emb:
        out += ["", "## Embedding kernels against the random-gather limit", "",
                "`build/bench/embedding_bench`: 4M rows of 16 floats with row-wise Adagrad state (a table far "
                "larger than the caches), batches of 65536 random rows. The limit is the fastest of three loops "
                "copying the same random rows out of a flat array (plain, software-prefetched by index, "
                "prefetched by pointer). The kernels get rows already resolved (as after the index lookup); the "
                "pull and push rows add the index lookup (embedding/slot_index.h: one 64-byte group of tags and "
                "slot numbers, then the row's entry, whose stored key confirms the match), a second random "
                "memory access per row. The row *two random accesses per row* is the floor of any layout that "
                "finds a row through an index: a random 64-byte line of an index-sized array (8 bytes a row), "
                "then the row it points to (the address depends on the line's contents, as in a lookup), both "
                "prefetched ahead like the pull's pipeline. More than that floor needs the row inside the index's "
                "line (one random access a row).", "",
                open(R("embedding_throughput.md")).read().split("\n", 2)[2].strip(), "",
                "![kernels](performance-kernels.png)"]
        if plt:
            fig, ax = plt.subplots(figsize=(9, 4))
            names = [r["operation"] for r in emb][::-1]
            ratios = [float(r["ratio_to_limit"]) for r in emb][::-1]
            colors = ["#888888" if n.startswith(("random gather", "two random")) else "#c0392b" for n in names]
            bars = ax.barh(names, [float(r["rows_per_sec"]) / 1e6 for r in emb][::-1], color=colors)
            for bar, r in zip(bars, ratios):
                ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {r:.2f}", va="center")
            ax.set_xlabel("million rows / s (label: fraction of the random-gather limit)")
            save(fig, ax, "Embedding kernels vs the random-gather limit (grey)", os.path.join(a.docs, "performance-kernels.png"), legend=False)

    if os.path.exists(R("embedding_memory.md")):
        out += ["", "## Memory of full tables", "",
                MEMORY_TEXT, "", open(R("embedding_memory.md")).read().strip()]

    ps = read(R("ps_throughput.csv"))
    if ps:
        out += ["", "## Parameter server against a plain socket", "",
                "`build/bench/ps_bench` through `bench/ps_throughput.py`: per step a worker pulls U unique keys' "
                "rows from 2 shard servers over loopback TCP and pushes their gradients (ember's RPC: request "
                "framing, key routing, shard lookup and the Adagrad update), against plain sockets moving the same "
                "request and reply bytes to the same number of servers (the transport's floor), and in-process "
                "shards (no network). The plain socket moves bytes and does no shard work, which here costs about "
                "as much as the transfer; `plain + shard work` adds the in-process time shared by the servers "
                "(they run in parallel): the floor of an RPC that moves the bytes and then does the work.", "", open(R("ps_throughput.md")).read().split("\n", 2)[2].strip(), "",
                "![ps](performance-ps.png)"]
        if plt:
            fig, ax = plt.subplots(figsize=(7, 4))
            k = [int(r["keys"]) for r in ps]
            for col, label, style in (("plain_rows_per_sec", "plain socket, same bytes", "s--"),
                                      ("remote_rows_per_sec", "ember PS over loopback", "o-"),
                                      ("in_process_rows_per_sec", "in-process shards", "^:")):
                ax.plot(k, [float(r[col]) / 1e6 for r in ps], style, label=label)
            ax.set_xscale("log")
            ax.set_xlabel("unique keys per step")
            ax.set_ylabel("million rows / s (pulled + pushed)")
            ax.set_ylim(bottom=0)
            save(fig, ax, "PS throughput vs a plain socket", os.path.join(a.docs, "performance-ps.png"), legend=True)

    comp = [r for r in read(R("compression.csv")) if r.get("auc")]
    if comp:
        out += ["", "## Test AUC against embedding memory", "",
                "`bench/compression.py` (DLRM, dim 16, one epoch of `ember datagen ctr`; memory = the parameter "
                "bytes the servers hold, with DSL's masks):", "",
                open(R("compression.md")).read().split("\n", 2)[2].strip(), "", "![auc](performance-auc-memory.png)"]
        if plt:
            fig, ax = plt.subplots(figsize=(8, 5))
            for method in dict.fromkeys(r["method"] for r in comp):
                pts = sorted((float(r["param_bytes"]) / 2**20, float(r["auc"])) for r in comp if r["method"] == method)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=method)
            ax.set_xscale("log")
            ax.set_xlabel("embedding parameters (MiB, log)")
            ax.set_ylabel("test AUC")
            save(fig, ax, "AUC against embedding memory, per method", os.path.join(a.docs, "performance-auc-memory.png"), legend=True)

    out += ["", "## What profiling found", "", PROFILE.strip()]
    for name, title in OTHER:
        if os.path.exists(R(name + ".md")):
            body = open(R(name + ".md")).read().strip()
            body = body.split("\n", 1)[1].strip() if body.startswith("#") else body
            body = re.sub(r"^#+ ", "### ", body, flags=re.M)  # below this report's sections
            out += ["", f"## {title}", "", body]
            if os.path.exists(R(name + ".png")):  # the benchmark's plot, beside its table
                shutil.copyfile(R(name + ".png"), os.path.join(a.docs, f"performance-{name}.png"))
                out += ["", f"![{name}](performance-{name}.png)"]
    with open(os.path.join(a.docs, "performance.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {os.path.join(a.docs, 'performance.md')}")


if __name__ == "__main__":
    main()
