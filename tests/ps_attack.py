#!/usr/bin/env python3
"""Another process on the same host against a live PS server (tests/mpi_attack_test.sh).

    ps_attack.py PORT EVIL_DIR

Sends what the probe of the PS port sent: (a) one push claiming 0xFFFFFFFF workers, (b) 200
pushes "worker 1 of 2, step 0, no slices" 5 ms apart, (c) headers announcing 1 GiB followed by
silence on 4 connections, and 4 that stall before their first frame (held open until the server
closes them), (d) save and shutdown, and
(e) 2000 mutations of valid frames. None of these peers knows the job's secret. Every answer
must be one error frame; nothing may be written to EVIL_DIR. Prints a summary; exits 1 on a
violation."""
import os
import random
import socket
import struct
import sys
import time

PORT = int(sys.argv[1])
EVIL = sys.argv[2].encode()
MAGIC, VERSION = 0x504D4245, 4


def frame(t, payload, rid=1, version=VERSION, size=None):
    return struct.pack("<IHHQII", MAGIC, version, t, rid, len(payload) if size is None else size, 0) + payload


def push(worker, workers, step, slices=b"", count=0):
    return struct.pack("<IIQII", worker, workers, step, 1, count) + slices


def string(s):
    return struct.pack("<I", len(s)) + s


def exchange(data, hold=False, timeout=10):
    """Connects, reads the challenge, sends data, returns everything until the server closes."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
    got = b""
    try:
        s.sendall(data)
        if hold:
            return s
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except (ConnectionResetError, BrokenPipeError, socket.timeout) as e:
        got += ("<%s>" % type(e).__name__).encode()
    finally:
        if not hold:
            s.close()
    return got


violations = []
answers = {"error": 0, "closed": 0}


def check(name, reply):
    # The challenge (type 10, 32 bytes) comes first; then at most one error frame, then close.
    if len(reply) < 24 + 32 or struct.unpack_from("<H", reply, 6)[0] != 10:
        violations.append("%s: no challenge (%r)" % (name, reply[:40]))
        return
    rest = reply[24 + 32:]
    if rest.startswith(b"<"):
        answers["closed"] += 1
        return
    if not rest:
        answers["closed"] += 1
        return
    t = struct.unpack_from("<H", rest, 6)[0]
    if t != 0:
        violations.append("%s: answered with frame type %d" % (name, t))
        return
    answers["error"] += 1
    n = struct.unpack_from("<I", rest, 16)[0]
    if len(rest) != 24 + n:
        violations.append("%s: more than one frame" % name)


check("a: 0xFFFFFFFF workers", exchange(frame(4, push(0, 0xFFFFFFFF, 0))))
for i in range(200):
    check("b: foreign push %d" % i, exchange(frame(4, push(1, 2, 0)), timeout=5))
    time.sleep(0.005)
held = [exchange(frame(4, b"", size=1 << 30), hold=True) for _ in range(4)]
held += [exchange(b"", hold=True) for _ in range(2)]           # connect, then say nothing
held += [exchange(frame(11, b"")[:10], hold=True) for _ in range(2)]  # half a header
check("d: save", exchange(frame(7, string(EVIL))))
check("d: shutdown", exchange(frame(9, b"")))
templates = [frame(1, b""), frame(5, b""), frame(9, b""), frame(7, string(EVIL)),
             frame(4, push(0, 1, 3, struct.pack("<IIQ", 0, 8, 1) + struct.pack("<Q", 5) + b"\0" * 32, 1)),
             frame(3, struct.pack("<QIIBQ", 0, 1, 0, 1, 1) + struct.pack("<Q", 5)),
             frame(11, b"\x01" * 68), frame(2, struct.pack("<I", 0))]
rng = random.Random(7)
for i in range(2000):
    f = bytearray(rng.choice(templates))
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(f))
        f[at] = rng.randrange(256)
    if rng.random() < 0.2:
        f += os.urandom(rng.randint(1, 64))
    check("e: mutation %d" % i, exchange(bytes(f), timeout=5))
# The 1 GiB headers: the server closes them at its handshake deadline (ps.timeout_s).
closed_by_server = 0
for s in held:
    s.settimeout(30)
    try:
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        closed_by_server += 1
    except (socket.timeout, ConnectionResetError):
        closed_by_server += isinstance(sys.exc_info()[1], ConnectionResetError)
    s.close()
if closed_by_server != len(held):
    violations.append("c: %d of %d silent connections were closed by the server" % (closed_by_server, len(held)))
if os.path.exists(EVIL) and os.listdir(EVIL):
    violations.append("d: the server wrote into %s" % EVIL.decode())
print("ps_attack: %d error frames, %d closed without one, %d held connections closed by the server, %d violations"
      % (answers["error"], answers["closed"], closed_by_server, len(violations)))
for v in violations[:20]:
    print("ps_attack: VIOLATION " + v)
sys.exit(1 if violations else 0)
