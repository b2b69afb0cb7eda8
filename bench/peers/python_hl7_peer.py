#!/usr/bin/python3
"""Peer benchmark: python3-hl7 (Debian package python3-hl7, `import hl7`) parsing the same files.

Each input file holds one message per line (segments end in CR, messages in LF). Messages are
decoded to str before timing; the timed loop is hl7.parse(message) for each message, in file
order, until all are parsed or the time budget runs out, whichever comes first. Reports
messages parsed per wall-clock second and per CPU second of the process (time.process_time). Prints one JSON line per workload (see bench/peers/README.md).

Usage: python_hl7_peer.py [--budget SECONDS] WORKLOAD=FILE...
"""
import argparse
import json
import sys
import time

import hl7


def run(name, path, budget):
    with open(path, "rb") as f:
        messages = [m for m in f.read().decode("utf-8").split("\n") if m]
    # Warm-up outside the timed loop (imports, caches).
    for m in messages[:100]:
        hl7.parse(m)
    n = 0
    segments = 0
    cpu_start = time.process_time()
    start = time.perf_counter()
    deadline = start + budget
    for m in messages:
        msg = hl7.parse(m)
        segments += len(msg)  # use the result
        n += 1
        if (n & 63) == 0 and time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    return {
        "impl": "python3-hl7 %s (CPython %d.%d)" % (getattr(hl7, "__version__", "?"),
                                                    sys.version_info[0], sys.version_info[1]),
        "workload": name, "op": "parse", "messages": n, "of": len(messages),
        "seconds": round(elapsed, 4), "cpu_seconds": round(cpu, 4),
        "msgs_per_s": round(n / elapsed, 1), "msgs_per_cpu_s": round(n / cpu, 1),
        "check_segments": segments,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=5.0, help="seconds per workload")
    ap.add_argument("inputs", nargs="+", metavar="WORKLOAD=FILE")
    a = ap.parse_args()
    for spec in a.inputs:
        name, _, path = spec.partition("=")
        print(json.dumps(run(name, path, a.budget)), flush=True)


if __name__ == "__main__":
    main()
