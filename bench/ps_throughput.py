#!/usr/bin/python3
"""Parameter-server pull + push throughput over loopback against a plain socket moving the same
bytes, for several batch sizes (unique keys per step). Runs build/bench/ps_bench once per size;
writes bench/results/ps_throughput.{csv,md}.

    /usr/bin/python3 bench/ps_throughput.py [--build build] [--keys 1000,4000,16000,64000]
"""
import argparse
import json
import os
import subprocess
import tempfile

import benchlib


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--keys", default="1000,4000,16000,64000")
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--out", default="bench/results")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in [int(x) for x in a.keys.split(",")]:
            path = os.path.join(tmp, f"ps-{k}.json")
            steps = max(20, min(400, 2_000_000 // k))
            subprocess.run([os.path.join(a.build, "bench", "ps_bench"), "--keys", str(k), "--steps", str(steps),
                            "--servers", str(a.servers), "--dim", str(a.dim), "--json", path],
                           check=True, stdout=subprocess.DEVNULL)
            j = json.load(open(path))
            rows_moved = 2 * k * steps  # pulled and pushed
            rows.append({"keys": k, "steps": steps, "in_process_rows_per_sec": round(rows_moved / j["local_seconds"]),
                         "remote_rows_per_sec": round(rows_moved / j["remote_seconds"]),
                         "plain_rows_per_sec": round(rows_moved / j["plain_seconds"]),
                         "remote_over_plain": round(j["plain_seconds"] / j["remote_seconds"], 3),
                         # The floor of an RPC that moves the bytes, then does the shard work (the
                         # servers in parallel): the plain socket's time plus the in-process time
                         # shared by the servers.
                         "remote_over_floor": round((j["plain_seconds"] + j["local_seconds"] / a.servers) /
                                                    j["remote_seconds"], 3),
                         "wire_over_min_bytes": round(j["wire_bytes_per_step"] / j["min_bytes_per_step"], 3)})
            print(rows[-1], flush=True)
    benchlib.write_csv(os.path.join(a.out, "ps_throughput.csv"), rows)
    with open(os.path.join(a.out, "ps_throughput.md"), "w") as f:
        f.write(f"# PS pull + push over loopback: {a.servers} servers, rows of {a.dim} floats\n\n")
        f.write("| unique keys per step | in-process rows/s | remote rows/s | plain socket rows/s | "
                "remote / plain | remote / (plain + shard work) | wire bytes / minimum |\n"
                "|---:|---:|---:|---:|---:|---:|---:|\n")
        for r in rows:
            f.write(f"| {r['keys']} | {r['in_process_rows_per_sec']:.3g} | {r['remote_rows_per_sec']:.3g} | "
                    f"{r['plain_rows_per_sec']:.3g} | {r['remote_over_plain']:.2f} | {r['remote_over_floor']:.2f} | "
                    f"{r['wire_over_min_bytes']:.2f} |\n")
    print(open(os.path.join(a.out, "ps_throughput.md")).read())


if __name__ == "__main__":
    main()
