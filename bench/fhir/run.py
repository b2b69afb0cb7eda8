#!/usr/bin/python3
"""FHIR server benchmark of `isthmus serve` (bench/fhir/run.sh; docs/PERFORMANCE.md, "FHIR server").

One server process on a fresh data directory (loopback, free ports) for the whole run:
  load      --resources resources through transaction Bundles of 500 entries (Patients and
            their Observations, subject by urn:uuid), progress every 10 s
  then, with that many resources stored, each phase measured by bench/fhir/fhir_load:
  create    POST /fhir/Patient from concurrent clients
  transaction  Bundles of 500 entries
  read      GET /fhir/{type}/{id} of random stored resources, 1 and 8 connections
  search    Patient?identifier=system|value and Observation?code=...&subject=Patient/..., 1 and 8
            connections; each answer must hold exactly one match
The server's RSS (/proc/PID/status VmRSS) is sampled every 0.5 s during every phase. Results go
to BUILD/fhir-results.md (Markdown) and BUILD/fhir-out/results.jsonl (one JSON object per phase,
then one with the machine facts).
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
P.add_argument("--build", required=True, help="build directory with isthmus and fhir_load")
P.add_argument("--resources", type=int, default=1_000_000, help="resources loaded before measuring")
P.add_argument("--seconds", type=float, default=20, help="duration of each read/search phase")
P.add_argument("--create-seconds", type=float, default=20, help="duration of the create phase")
P.add_argument("--bundles", type=int, default=60, help="Bundles in the transaction phase")
P.add_argument("--load-conns", type=int, default=2, help="connections of the load phase")
P.add_argument("--create-conns", type=int, default=16, help="connections of the create phase")
P.add_argument("--isthmus", help="the server binary (default BUILD/isthmus), e.g. for A/B runs "
               "of two builds")
P.add_argument("--keep", action="store_true", help="keep the data directory afterwards")
PHASES = ("create", "transaction", "read", "search-identifier", "search-code-subject")
P.add_argument("--phases", default=",".join(PHASES),
               help="phases after the load, comma-separated (default all: %s)" % ",".join(PHASES))
P.add_argument("--server", action="append", default=[], metavar="KEY=VALUE",
               help="a key of the config's server section, e.g. http_threads=2 (repeatable)")
A = P.parse_args()

BUILD = os.path.abspath(A.build)
WORK = os.path.join(BUILD, "fhir-work")
OUT = os.path.join(BUILD, "fhir-out")
ISTHMUS = os.path.abspath(A.isthmus) if A.isthmus else os.path.join(BUILD, "isthmus")
LOAD = os.path.join(BUILD, "fhir_load")
IDS = os.path.join(WORK, "ids.txt")
BUNDLE = 500


def log(*a):
    print("==", *a, file=sys.stderr, flush=True)


def loadavg():
    return float(open("/proc/loadavg").read().split()[0])


def vmrss_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssSampler:
    """The server's RSS every 0.5 s while a phase runs: first, max, last and every sample."""

    def __init__(self, pid):
        self.pid, self.samples, self.t0 = pid, [], time.time()
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            self.samples.append((round(time.time() - self.t0, 1), round(vmrss_mb(self.pid), 1)))
            if self.halt.wait(0.5):
                break

    def finish(self):
        self.halt.set()
        self.thread.join()
        mb = [s[1] for s in self.samples]
        return {"rss_first_mb": mb[0], "rss_max_mb": max(mb), "rss_last_mb": mb[-1]}


CLK_TCK = os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid):
    """CPU seconds (user + system) of the server's threads: the store's writer thread and all others,
    and by thread name (`by_name`: writer, net-N event loop, the unnamed HTTP handler pool...)."""
    out = {"writer": 0.0, "other": 0.0, "by_name": {}}
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for t in tasks:
        try:
            comm = open("/proc/%d/task/%s/comm" % (pid, t)).read().strip()
            f = open("/proc/%d/task/%s/stat" % (pid, t)).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu = (int(f[11]) + int(f[12])) / CLK_TCK
        out["writer" if comm == "writer" else "other"] += cpu
        out["by_name"][comm] = out["by_name"].get(comm, 0.0) + cpu
    return out


def children_cpu_s():
    """CPU seconds of finished child processes (the load client fhir_load)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def start_server():
    os.makedirs(os.path.join(WORK, "data"))
    ready = os.path.join(WORK, "ready")
    logf = open(os.path.join(WORK, "server.log"), "w")
    # The FHIR server alone: no MLLP listener and no channel (the embedded default would also
    # load the v2 -> FHIR maps and run a dispatcher, which this benchmark does not measure).
    config = os.path.join(WORK, "fhir-only.yaml")
    with open(config, "w") as f:
        f.write("# written by bench/fhir/run.py: the FHIR server alone\nlisteners: []\nchannels: []\n")
        if A.server:
            f.write("server:\n" + "".join("  %s: %s\n" % tuple(kv.split("=", 1)) for kv in A.server))
    proc = subprocess.Popen([ISTHMUS, "serve", "--config", config, "--data", os.path.join(WORK, "data"),
                             "--http", "127.0.0.1:0", "--ready-file", ready],
                            stdout=logf, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while not (os.path.exists(ready) and open(ready).read().strip()):
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit("isthmus serve did not start; see %s" % logf.name)
        time.sleep(0.05)
    return proc, int(open(ready).read().split()[1])


def fhir_load(port, mode, conns, *extra):
    cmd = [LOAD, "--port", str(port), "--mode", mode, "--conns", str(conns), *map(str, extra)]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # progress/errors: our stderr
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if r.returncode != 0 or not lines:
        raise SystemExit("fhir_load failed (%d): %s" % (r.returncode, " ".join(cmd)))
    return json.loads(lines[-1])


def db_mb():
    d = os.path.join(WORK, "data")
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)) / 2**20


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    fs = subprocess.run(["df", "-T", WORK], capture_output=True, text=True).stdout.splitlines()[-1].split()
    cxx = subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no", "src"],
                           capture_output=True, text=True).stdout.strip()
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": head + (" + uncommitted changes in src/" if dirty else ""),
            "cpu": cpu, "nproc": os.cpu_count(), "kernel": "Linux " + platform.release(),
            "fs": "%s (%s)" % (fs[1], fs[0]), "compiler": cxx,
            "mem_total_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def fsync_per_s(seconds=2.0):
    """4 KiB append + fsync in the data directory's filesystem: what bounds a commit."""
    path = os.path.join(WORK, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        os.write(fd, b"x" * 4096)
        os.fsync(fd)
        n += 1
    os.close(fd)
    os.unlink(path)
    return round(n / (time.perf_counter() - t0))


def main():
    os.makedirs(OUT, exist_ok=True)
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    info = machine()
    info["fsync_per_s_start"] = fsync_per_s()
    proc, port = start_server()
    log("isthmus serve pid %d, HTTP port %d, data in %s" % (proc.pid, port, os.path.join(WORK, "data")))
    rows = []

    def phase(name, target, mode, conns, *extra):
        load0 = loadavg()
        rss = RssSampler(proc.pid)
        cpu0, client0 = thread_cpu_s(proc.pid), children_cpu_s()
        r = fhir_load(port, mode, conns, *extra)
        cpu1, client1 = thread_cpu_s(proc.pid), children_cpu_s()
        r.update(rss.finish())
        # Server CPU per resource: the writer thread (the single-writer bound of write phases) and
        # the whole process; less sensitive to the shared machine's load than resources/s.
        n = max(1, r["resources"])
        r["writer_cpu_ms_per_resource"] = round(1000 * (cpu1["writer"] - cpu0["writer"]) / n, 4)
        r["server_cpu_ms_per_resource"] = round(
            1000 * (cpu1["writer"] + cpu1["other"] - cpu0["writer"] - cpu0["other"]) / n, 4)
        # Where the rest went: per thread name (ms per resource), and the load client's own CPU
        # (it shares the 2 cores with the server).
        r["thread_cpu_ms_per_resource"] = {
            k: round(1000 * (v - cpu0["by_name"].get(k, 0.0)) / n, 4) for k, v in cpu1["by_name"].items()
            if v - cpu0["by_name"].get(k, 0.0) > 0}
        r["client_cpu_ms_per_resource"] = round(1000 * (client1 - client0) / n, 4)
        r.update({"phase": name, "target": target, "load_start": load0, "load_end": loadavg(),
                  "stored_before": stored[0]})
        if mode in ("create", "transaction"):
            stored[0] += r["resources"]
        if name == "load":
            r["rss_samples"] = rss.samples
        rows.append(r)
        log("%-34s %2d conn: %9.0f resources/s, p50 %.2f ms, p99 %.2f ms, max %.1f ms; RSS %.0f -> max %.0f -> %.0f MB;"
            " errors %d, mismatches %d; load %.1f; CPU ms/resource writer %.3f, server %.3f"
            % (name, conns, r["resources_per_s"], r["p50_ms"], r["p99_ms"], r["max_ms"], r["rss_first_mb"],
               r["rss_max_mb"], r["rss_last_mb"], r["errors"], r["mismatches"], r["load_end"],
               r["writer_cpu_ms_per_resource"], r["server_cpu_ms_per_resource"]))
        log("   CPU ms/resource by thread: %s; client %.3f" % (
            ", ".join("%s %.3f" % kv for kv in sorted(r["thread_cpu_ms_per_resource"].items())),
            r["client_cpu_ms_per_resource"]))
        return r

    stored = [0]
    try:
        n_bundles = max(1, A.resources // BUNDLE)
        log("load: %d resources in %d transaction Bundles of %d (%d connections)"
            % (n_bundles * BUNDLE, n_bundles, BUNDLE, A.load_conns))
        phase("load", "", "transaction", A.load_conns, "--requests", n_bundles, "--tag", "L",
              "--ids-out", IDS, "--progress", 10)
        info["db_mb_after_load"] = round(db_mb())
        log("database after load: %.0f MB" % info["db_mb_after_load"])
        phases = [p for p in A.phases.split(",") if p]
        unknown = set(phases) - set(PHASES)
        if unknown:
            raise SystemExit("unknown phase(s) %s (expected %s)" % (", ".join(sorted(unknown)), ", ".join(PHASES)))
        if "create" in phases:
            phase("create", ">= 5,000/s", "create", A.create_conns, "--seconds", A.create_seconds, "--tag", "C")
        if "transaction" in phases:
            phase("transaction (500 entries)", ">= 20,000/s", "transaction", 2, "--requests", A.bundles,
                  "--tag", "T")
        for mode, name, target in (("read", "read", "p99 <= 2 ms"),
                                   ("search-identifier", "search Patient?identifier", "p99 <= 10 ms"),
                                   ("search-code-subject", "search Observation?code&subject", "p99 <= 10 ms")):
            if mode in phases:
                for conns in (1, 8):
                    phase(name, target, mode, conns, "--seconds", A.seconds, "--ids", IDS, "--warmup", 50)
        info["db_mb_end"] = round(db_mb())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    info["fsync_per_s_end"] = fsync_per_s()
    info["resources_loaded"] = A.resources
    info["server_keys"] = A.server
    if not A.keep:
        shutil.rmtree(os.path.join(WORK, "data"), ignore_errors=True)
    with open(os.path.join(OUT, "results.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        f.write(json.dumps({"machine": info}) + "\n")
    md = report(rows, info)
    with open(os.path.join(BUILD, "fhir-results.md"), "w") as f:
        f.write(md)
    print(md)


def trend_mb_per_100k(samples, resources, seconds):
    """Least-squares slope of RSS over the load's second half, per 100,000 resources loaded."""
    half = [s for s in samples if s[0] >= samples[-1][0] / 2]
    if len(half) < 3 or seconds <= 0:
        return 0.0
    n = len(half)
    mx = sum(s[0] for s in half) / n
    my = sum(s[1] for s in half) / n
    var = sum((s[0] - mx) ** 2 for s in half)
    slope = sum((s[0] - mx) * (s[1] - my) for s in half) / var if var else 0.0  # MB per second
    return slope * seconds / resources * 100000


def report(rows, m):
    out = []
    out.append("Machine: %s, %d cores (nproc), %.0f GB, %s; data dir on %s; %s -O3 (Release); fsync rate %s/s at "
               "start, %s/s at end (4 KiB append + fsync, same filesystem)."
               % (m["cpu"], m["nproc"], m["mem_total_gb"], m["kernel"], m["fs"], m["compiler"],
                  format(m["fsync_per_s_start"], ","), format(m["fsync_per_s_end"], ",")))
    out.append("Run: %s, commit %s. Loaded %s resources; database %s MB after the load, %s MB at the end."
               % (m["date"], m["commit"], format(rows[0]["resources"], ","), format(m["db_mb_after_load"], ","),
                  format(m.get("db_mb_end", 0), ",")))
    if m.get("server_keys"):
        out.append("Server config keys: %s." % ", ".join(m["server_keys"]))
    out.append("")
    out.append("| phase | stored before | conns | requests | resources/s | p50 ms | p99 ms | max ms | target | "
               "RSS first → max → last MB | errors | load avg start/end | CPU ms/resource writer, server |")
    out.append("|---|--:|--:|--:|--:|--:|--:|--:|---|---|--:|---|---|")
    for r in rows:
        out.append("| %s | %s | %d | %s | %s | %.2f | %.2f | %.1f | %s | %.0f → %.0f → %.0f | %d%s | %.1f / %.1f | %.3f, %.3f |"
                   % (r["phase"], format(r["stored_before"], ","), r["conns"], format(r["requests"], ","),
                      format(round(r["resources_per_s"]), ","), r["p50_ms"], r["p99_ms"], r["max_ms"],
                      r["target"], r["rss_first_mb"], r["rss_max_mb"], r["rss_last_mb"], r["errors"],
                      (" (%d mismatches)" % r["mismatches"]) if r["mismatches"] else "",
                      r["load_start"], r["load_end"], r["writer_cpu_ms_per_resource"],
                      r["server_cpu_ms_per_resource"]))
    load = rows[0]
    out.append("")
    out.append("Load phase: RSS trend over its second half %+.1f MB per 100,000 resources; samples (s, MB): %s"
               % (trend_mb_per_100k(load["rss_samples"], load["resources"], load["seconds"]),
                  ", ".join("%g:%g" % s for s in load["rss_samples"][:: max(1, len(load["rss_samples"]) // 12)])))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
