#!/usr/bin/env python3
"""Instructions of the store's writer thread per resource (callgrind; deterministic, unlike
wall-clock figures on a shared machine). docs/PERFORMANCE.md, "FHIR server".

Runs `isthmus serve` (the FHIR server alone, fresh data directory) under
`valgrind --tool=callgrind --separate-threads=yes` twice: once writing SMALL resources and once
LARGE, through fhir_load (transaction Bundles of 500, or creates), and prints the writer
thread's instructions (Ir) of each run and (LARGE - SMALL) / (resources difference): the cost
of one more resource, without start-up and shutdown.

  bench/fhir/callgrind.py --isthmus build-fhirperf/isthmus --load build-fhirperf/fhir_load \\
      --mode transaction --small 4 --large 12          # Bundles of 500: 2,000 vs 6,000
  bench/fhir/callgrind.py ... --mode create --small 1000 --large 3000 --conns 16

Transactions give the same count run after run (one Bundle per writer op, 2 connections in
turn); creates vary with how many requests share a group commit.
"""
import argparse
import glob
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
P.add_argument("--isthmus", required=True)
P.add_argument("--load", required=True, help="the fhir_load binary")
P.add_argument("--mode", choices=["transaction", "create"], default="transaction")
P.add_argument("--small", type=int, default=4, help="requests of the small run")
P.add_argument("--large", type=int, default=12, help="requests of the large run")
P.add_argument("--conns", type=int, default=2)
P.add_argument("--keep", help="directory to keep the callgrind files in")
A = P.parse_args()


def writer_ir(files):
    """Ir of the thread whose profile holds the writer's loop."""
    for f in files:
        text = open(f, errors="replace").read()
        if "Writer::Loop" not in text:
            continue
        m = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
        return int(m.group(1))
    raise SystemExit("no writer thread in " + " ".join(files))


def run(requests):
    work = tempfile.mkdtemp(prefix="fhir-cg-")
    cfg = os.path.join(work, "fhir-only.yaml")
    with open(cfg, "w") as f:
        f.write("listeners: []\nchannels: []\n")
    ready = os.path.join(work, "ready")
    out = os.path.join(work, "cg.out")
    log = open(os.path.join(work, "server.log"), "w")
    srv = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--separate-threads=yes", "--callgrind-out-file=" + out,
         A.isthmus, "serve", "--config", cfg, "--data", os.path.join(work, "data"),
         "--http", "127.0.0.1:0", "--ready-file", ready],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not os.path.exists(ready) or os.path.getsize(ready) == 0:
        if srv.poll() is not None or time.time() > deadline:
            raise SystemExit("server did not start: see " + log.name)
        time.sleep(0.5)
    time.sleep(0.2)
    port = int(open(ready).read().split()[1])  # as bench/fhir/run.py reads it
    args = [A.load, "--port", str(port), "--mode", A.mode, "--conns", str(A.conns),
            "--requests", str(requests), "--tag", "CG%d" % requests]
    res = subprocess.run(args, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit("fhir_load failed: " + res.stderr)
    srv.send_signal(signal.SIGTERM)
    srv.wait(timeout=300)
    files = sorted(glob.glob(out + "*"))
    ir = writer_ir(files)
    if A.keep:
        os.makedirs(A.keep, exist_ok=True)
        for f in files:
            os.rename(f, os.path.join(A.keep, "%s-%d-%s" % (A.mode, requests, os.path.basename(f))))
    return ir, res.stdout.strip()


per_request = 500 if A.mode == "transaction" else 1
small, s_out = run(A.small)
large, l_out = run(A.large)
n = (A.large - A.small) * per_request
print("small: %d requests, writer Ir %d  %s" % (A.small, small, s_out))
print("large: %d requests, writer Ir %d  %s" % (A.large, large, l_out))
print("writer instructions per resource: %.0f" % ((large - small) / n))
