#!/usr/bin/python3
"""Reads an ember export (`ember export --out FILE`) without ember: a proof that
docs/formats.md describes the format completely. Needs only Python 3 and numpy.

    python3 examples/read_export.py model.embx                   # summary of tables and weights
    python3 examples/read_export.py model.embx --lookup 0 12345  # one row of table 0 by key
    python3 examples/read_export.py model.embx --json out.json --rows 5

Row keys are ember's: (table << 54) | local, where local is the hashed or raw id
(docs/formats.md). Rows a table does not hold read as ember reads them: zero for frozen tables;
for others, their deterministic initial values, which this reader does not recompute (it says so).
"""
import argparse
import json
import struct
import sys
import zlib

import numpy as np

PROLOGUE, TRAILER, ALIGN = 16, 16, 64


class ExportError(Exception):
    pass


class Export:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        if len(d) < PROLOGUE + TRAILER:
            raise ExportError(f"{path}: too short ({len(d)} bytes)")
        if d[:4] != b"EMBX":
            raise ExportError(f"{path}: wrong magic")
        version, header_len = struct.unpack_from("<IQ", d, 4)
        if version != 1:
            raise ExportError(f"{path}: format version {version}, this reader knows 1")
        if d[-8:] != b"EMBXEND\0":
            raise ExportError(f"{path}: no end marker (truncated?)")
        (crc,) = struct.unpack_from("<Q", d, len(d) - TRAILER)
        if zlib.crc32(memoryview(d)[: len(d) - TRAILER]) != crc:
            raise ExportError(f"{path}: checksum mismatch (corrupted)")
        self.header = json.loads(d[PROLOGUE:PROLOGUE + header_len].decode("utf-8"))
        if "delta" in self.header:
            raise ExportError(f"{path} is a delta export (of {self.header['delta']['parent']}): resolve it first with "
                             "`ember export --flatten PATH --out FULL`")
        self.precision = self.header["precision"]
        self.tables = {t["id"]: t for t in self.header["tables"]}

    def section(self, sec, dtype, count=None):
        off, n = sec["offset"], sec["bytes"]
        if off % ALIGN or off + n > len(self.data) - TRAILER:
            raise ExportError("section outside the file or misaligned")
        return np.frombuffer(self.data, dtype=dtype, count=n // np.dtype(dtype).itemsize if count is None else count,
                             offset=off)

    def table_rows(self, table_id):
        """(keys uint64[n], rows float32[n, dim]) of a table, dequantized; masked entries zero."""
        t = self.tables[table_id]
        n, dim = t["rows"], t["dim"]
        keys = self.section(t["keys"], "<u8")
        vdtype = {"fp32": "<f4", "fp16": "<f2", "int8": "u1"}[self.precision]
        values = self.section(t["values"], vdtype).astype(np.float32)
        if self.precision == "int8":  # per row: value = q * scale + bias
            sb = self.section(t["scales"], "<f4").reshape(n, 2)
        rows = np.zeros((n, dim), dtype=np.float32)
        if t["kind"] == "dense":
            rows[:] = values.reshape(n, dim)
            if self.precision == "int8":
                rows = rows * sb[:, :1] + sb[:, 1:]
            return keys, rows
        mdtype = {1: "u1", 2: "<u2", 4: "<u4", 8: "<u8"}[t["mask_bytes"]]
        masks = self.section(t["masks"], mdtype).astype(np.uint64)
        counts = np.array([bin(int(m)).count("1") for m in masks], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)])  # row r's values: starts[r]..starts[r+1]
        for r in range(n):  # sparse rows: the kept values, in mask-bit order
            kept = [j for j in range(dim) if (int(masks[r]) >> j) & 1]
            v = values[int(starts[r]):int(starts[r + 1])]
            if self.precision == "int8":
                v = v * sb[r, 0] + sb[r, 1]
            rows[r, kept] = v
        return keys, rows

    def lookup(self, table_id, key):
        keys, rows = self.table_rows(table_id)
        i = np.searchsorted(keys, np.uint64(key))  # keys are sorted ascending
        if i < len(keys) and keys[i] == key:
            return rows[i]
        return None

    def dense(self):
        return {d["name"]: self.section(d["data"], "<f4").reshape(d["shape"]) for d in self.header["dense"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--lookup", nargs=2, type=int, metavar=("TABLE", "KEY"))
    ap.add_argument("--json", help="write the first --rows rows of every table and each dense array's sum")
    ap.add_argument("--rows", type=int, default=5)
    a = ap.parse_args()
    try:
        e = Export(a.file)
    except ExportError as err:
        print(f"read_export: {err}", file=sys.stderr)
        return 1
    m = e.header["model"]
    print(f"{a.file}: {m.get('kind')} model {m.get('name')}, {e.precision} rows, {len(e.tables)} tables, "
          f"{len(e.header['dense'])} dense arrays")
    for tid, t in sorted(e.tables.items()):
        print(f"  table {tid}: {t['rows']} rows x {t['dim']} ({t['kind']}), absent keys read {t['missing']}")
    if a.lookup:
        row = e.lookup(*a.lookup)
        if row is None:
            t = e.tables[a.lookup[0]]
            print("absent: reads zero" if t["missing"] == "zero" else "absent: reads its initial value (ember's)")
        else:
            print(" ".join(f"{x:.7g}" for x in row))
    if a.json:
        out = {"tables": {}, "dense": {}}
        for tid in e.tables:
            keys, rows = e.table_rows(tid)
            out["tables"][str(tid)] = {"rows": int(len(keys)), "keys": [int(k) for k in keys[:a.rows]],
                                       "values": [[float(x) for x in r] for r in rows[:a.rows]]}
        for name, arr in e.dense().items():
            out["dense"][name] = {"shape": list(arr.shape), "sum": float(arr.astype(np.float64).sum())}
        with open(a.json, "w") as f:
            json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
