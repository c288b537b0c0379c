"""Helpers the benchmark scripts share: synthetic data, result tables, a free loopback port."""
import csv
import os
import socket
import subprocess
import sys


def datagen(ember, path, rows, seed=1, quiet=True):
    """`ember datagen ctr` into `path` unless it is already there."""
    if not os.path.exists(path):
        subprocess.run([ember, "datagen", "ctr", "--rows", str(rows), "--seed", str(seed), "--out", path],
                       check=True, stdout=subprocess.DEVNULL if quiet else None)
    return path


def write_csv(path, rows, fields=None):
    """rows (dicts) as CSV with `fields` (default: the first row's keys), missing values empty."""
    fields = fields or list(rows[0].keys())
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None (with a message) where it is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        print("matplotlib absent (apt-get install python3-matplotlib): no plot", file=sys.stderr)
        return None
