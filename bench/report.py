#!/usr/bin/python3
"""Builds the Markdown results table of bench/run.sh from one run's outputs.

Inputs: the Google Benchmark JSON of hl7v2_parse_bench (aggregates of repetitions), the peers'
JSON lines (bench/peers/), and machine facts (JSON). Prints the table and writes it to --out.

"msgs/s" is messages per wall-clock second; "per core" is messages per CPU second of the process.
Every implementation runs single-threaded, so on an idle machine the two agree; when other work
shares the cores, wall-clock rates drop and the CPU-time rate is the better per-core figure.
"""
import argparse
import json

TARGETS = {"parse": 400_000, "parse+get": 400_000, "parse+validate": 100_000}
OPS = {"BM_Parse": "parse", "BM_ParseGet": "parse+get", "BM_ParseValidate": "parse+validate"}
WORKLOADS = {"adt": "ADT^A01", "oru": "ORU^R01 (10 OBX)"}


def ours(path):
    with open(path) as f:
        data = json.load(f)
    rows = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        bench, workload = b["run_name"].split("/")[:2]
        if bench not in OPS:
            continue
        per_cpu = b["items_per_second"]  # Google Benchmark: items / CPU time
        wall = per_cpu * b["cpu_time"] / b["real_time"]
        reps = b.get("repetitions", 1)
        rows[(workload, OPS[bench])] = {
            "impl": "**Isthmus** hl7v2 (C++, %s)" % ("median of %d" % reps if reps > 1 else "1 run"),
            "workload": workload, "op": OPS[bench], "msgs_per_s": wall, "msgs_per_cpu_s": per_cpu,
            "note": ("%.1f issues/msg" % b["issues_per_msg"]) if "issues_per_msg" in b else "",
        }
    return data.get("context", {}), rows


def peers(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                p = json.loads(line)
                p["note"] = "%d of %d msgs" % (p["messages"], p["of"]) if p["messages"] < p["of"] else ""
                out.append(p)
    return out


def fmt(v):
    return "{:,.0f}".format(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--peers", required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(a.machine) as f:
        machine = json.load(f)
    context, mine = ours(a.ours)
    others = peers(a.peers)

    lines = []
    lines.append("Machine: %s, %s cores (nproc), %s; %s; load average %s at start, %s at end." % (
        machine["cpu"], machine["nproc"], machine["kernel"], machine["compiler"],
        machine["load_start"], machine["load_end"]))
    lines.append("Run: %s. Workload: %s messages per file from %s." % (
        machine["date"], machine["messages"], machine["generator"]))
    lines.append("")
    lines.append("| implementation | workload | operation | msgs/s | per core (msgs per CPU s) "
                 "| target per core | vs target | notes |")
    lines.append("|---|---|---|--:|--:|--:|--:|---|")
    for workload in ("adt", "oru"):
        rows = []
        for op in ("parse", "parse+get", "parse+validate"):
            r = mine.get((workload, op))
            if r is None and op == "parse+validate":
                r = {"impl": "**Isthmus** hl7v2 (C++)", "workload": workload, "op": op,
                     "msgs_per_s": None, "msgs_per_cpu_s": None,
                     "note": "validator not built in this configuration"}
            if r is not None:
                rows.append(r)
        rows += [p for p in others if p["workload"] == workload]
        for r in rows:
            target = TARGETS[r["op"]]
            if r["msgs_per_cpu_s"] is None:
                lines.append("| %s | %s | %s | — | — | %s | — | %s |" % (
                    r["impl"], WORKLOADS[workload], r["op"], fmt(target), r["note"]))
                continue
            ratio = r["msgs_per_cpu_s"] / target
            verdict = ("%.2f× ✅" if ratio >= 1 else "%.2f× ❌") % ratio
            if ratio < 0.01:
                verdict = "%.4f× ❌" % ratio
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["impl"], WORKLOADS[workload], r["op"], fmt(r["msgs_per_s"]),
                fmt(r["msgs_per_cpu_s"]), fmt(target), verdict, r["note"]))
    lines.append("")
    lines.append("Targets (per core): parse ≥ 400,000 msgs/s (parse+get is held to the same), "
                 "parse+validate ≥ 100,000 msgs/s. Peers parse only; none of them validates.")
    text = "\n".join(lines) + "\n"
    with open(a.out, "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
