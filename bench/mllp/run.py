#!/usr/bin/python3
"""MLLP throughput benchmark of `isthmus serve` with peers in the same run (bench/mllp/run.sh).

Runs every scenario against a fresh server process with a fresh data directory, samples the
server's RSS while the load runs, and writes a Markdown table (BUILD/mllp-results.md) plus the
raw results (BUILD/mllp-out/results.jsonl). See docs/PERFORMANCE.md, section "MLLP".

Scenarios:
  1  isthmus serve, embedded default (ACK after the durable journal commit, no destination):
     mllp_load 1 and 16 connections (window 1) on messages with MSH-15/16 blanked (AA) and on
     gen_hl7.py's messages as generated (MSH-15=AL, so the ACK is CA, which mllp_load counts as a
     NAK); mllp_bench_client.py 1 and 8 connections; `isthmus send` 1 and 16 connections.
  2  isthmus serve with a file destination: mllp_sustain (16 connections) for --duration
     seconds; RSS and /api/destinations sampled every --sample seconds; delivered rate from the
     destination's counters and the files written.
  3  peers: C++ echo server, C++ group-commit fdatasync server, simple-hl7, @medplum/hl7
     Hl7Server; mllp_load 1 and 16 connections.
  4  fsync rate of the data directory's filesystem (4 KiB append + fsync loop).
"""
import argparse
import atexit
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
P.add_argument("--root", required=True)
P.add_argument("--build", required=True)
P.add_argument("--data", required=True, help="base workload file (gen_hl7.py, one message per line)")
P.add_argument("--tools", required=True, help="directory of mllp_bench_client.py")
P.add_argument("--node", default="node")
P.add_argument("--duration", type=float, default=300, help="file-destination scenario, seconds")
P.add_argument("--sample", type=float, default=5, help="sampling interval, seconds")
P.add_argument("--rss-cap", type=float, default=4096,
               help="file-destination scenario: stop the load early if the server's RSS passes this (MB)")
P.add_argument("--drain", type=float, default=60, help="file-destination scenario: seconds to watch the "
               "backlog drain after the load")
P.add_argument("--quick", action="store_true", help="fewer messages per run")
P.add_argument("--only", default="1,2,3,4", help="scenarios to run, e.g. 1,3")
A = P.parse_args()

BUILD = A.build
WORK = os.path.join(BUILD, "mllp-work")
OUT = os.path.join(BUILD, "mllp-out")
ISTHMUS = os.path.join(BUILD, "isthmus")
ONLY = set(A.only.split(","))
# Messages per run. mllp_load starts connection k at message k*7919 of its file and cycles, so
# with 16 connections each one must send at most 7919 (warm-up included) to never repeat one.
N1 = 5000 if A.quick else 20000       # 1 connection
N16 = 32000 if A.quick else 112000    # 16 connections (7,000 each + 200 warm-up)
NODE16 = 16000 if A.quick else 48000  # node peers are slower: keep their runs ~10 s
WARM = 200
PY1 = 2000 if A.quick else 5000       # mllp_bench_client.py
PY8 = 4000 if A.quick else 16000

results = []
RUNNING = []  # servers to stop if the run fails half way


@atexit.register
def _stop_running():
    for p in RUNNING:
        if p.poll() is None:
            p.kill()


def log(*a):
    print("==", *a, file=sys.stderr, flush=True)


def loadavg():
    return open("/proc/loadavg").read().split()[0]


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler:
    """Samples a process's RSS every `every` seconds in a thread (max and last)."""

    def __init__(self, pid, every=0.5):
        self.pid, self.every, self.max, self.last = pid, every, 0, 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            r = rss_kb(self.pid)
            if r:
                self.last = r
                self.max = max(self.max, r)
            self.stop.wait(self.every)

    def done(self):
        self.stop.set()
        self.t.join()
        return self.max


class Server:
    def __init__(self, name, cmd, cwd=None, ready_name="ready"):
        self.name = name
        self.dir = os.path.join(WORK, re.sub(r"[^A-Za-z0-9_.-]", "_", name))
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        # Every measurement starts with nothing dirty in the page cache: the workload files
        # written just before the first run and the previous server's data directory would
        # otherwise be flushed during this one, and its fsyncs would wait for them.
        os.sync()
        self.ready = os.path.join(self.dir, ready_name)
        self.cmd = [c.replace("{dir}", self.dir).replace("{ready}", self.ready) for c in cmd]
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.p = subprocess.Popen(self.cmd, cwd=cwd or self.dir, stdout=self.log, stderr=subprocess.STDOUT)
        RUNNING.append(self.p)
        deadline = time.time() + 60
        while not (os.path.exists(self.ready) and open(self.ready).read().strip()):
            if self.p.poll() is not None or time.time() > deadline:
                raise SystemExit("%s did not start; see %s" % (name, self.log.name))
            time.sleep(0.05)
        ports = open(self.ready).read().split()
        self.port = int(ports[0])
        self.http = int(ports[1]) if len(ports) > 1 else None

    def api(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.http, path), timeout=60) as r:
            return json.load(r)

    def stop(self, keep=False):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.log.close()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


JOURNAL_ONLY = """# written by bench/mllp/run.py: scenario 1, ACK after the journal commit, no destination
listeners:
  - name: bench-in
    address: 127.0.0.1:0
    channel: default
channels:
  - name: default
"""


def isthmus_server(name, config=None):
    """Scenario 1 runs a journal-only channel (the embedded default now also converts every
    message to FHIR and stores it, which is not what the ACK figures measure)."""
    if config is None:
        os.makedirs(WORK, exist_ok=True)
        config = os.path.join(WORK, "journal-only.yaml")
        with open(config, "w") as f:
            f.write(JOURNAL_ONLY)
    cmd = [ISTHMUS, "serve", "--data", "{dir}/data", "--mllp", "127.0.0.1:0", "--http", "127.0.0.1:0",
           "--ready-file", "{ready}", "--drain-seconds", "5", "--config", config]
    return Server(name, cmd)


def run_json(cmd, timeout=3600):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    line = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if not line:
        raise SystemExit("%s failed (%d): %s %s" % (cmd[0], r.returncode, r.stdout, r.stderr))
    return json.loads(line[-1])


def mllp_load(port, conns, n, data):
    j = run_json([os.path.join(BUILD, "mllp_load"), "-p", str(port), "-c", str(conns), "-w", "1",
                  "-n", str(n), "-W", str(WARM), "-m", "1000000", "-f", data])
    return {"client": "mllp_load", "msgs": j["msgs"], "msgs_per_s": j["msgs_per_s"],
            "p50_ms": j["p50_us"] / 1000, "p99_ms": j["p99_us"] / 1000,
            "errors": j["errors"], "non_aa": j["nacks"], "mismatch": j["ack_mismatch"]}


def py_client(port, conns, n):
    j = run_json([sys.executable, os.path.join(A.tools, "mllp_bench_client.py"), "--port", str(port),
                  "-n", str(n), "-c", str(conns), "--warmup", str(20 * conns)])
    return {"client": "mllp_bench_client.py", "msgs": j["messages"], "msgs_per_s": j["msgs_per_s"],
            "p50_ms": j["p50_ms"], "p99_ms": j["p99_ms"], "errors": len(j["errors"]),
            "non_aa": j["bad_acks"], "mismatch": 0, "codes": j["ack_codes"]}


def isthmus_send(port, conns, path):
    r = subprocess.run([ISTHMUS, "send", "--to", "127.0.0.1:%d" % port, "--connections", str(conns),
                        "--quiet", path], capture_output=True, text=True, timeout=3600)
    out = r.stdout + r.stderr
    m = re.search(r"sent (\d+) messages in ([\d.]+) s \(([\d.]+) msg/s\)", out)
    lat = re.search(r"p50 ([\d.]+) ms\s+p99 ([\d.]+) ms", out)
    codes = dict((k, int(v)) for k, v in re.findall(r"\b(AA|AE|AR|CA|CE|CR) (\d+)", out))
    noreply = re.search(r"no reply (\d+)", out)
    if not m or not lat:
        raise SystemExit("isthmus send: unexpected output (%d): %s" % (r.returncode, out))
    bad = sum(v for k, v in codes.items() if k not in ("AA", "CA"))
    return {"client": "isthmus send", "msgs": int(m.group(1)), "msgs_per_s": float(m.group(3)),
            "p50_ms": float(lat.group(1)), "p99_ms": float(lat.group(2)),
            "errors": int(noreply.group(1)) if noreply else 0, "non_aa": bad, "mismatch": 0,
            "codes": codes}


def measure(server, impl, scenario, fn, conns, extra=None):
    sampler = Sampler(server.p.pid)
    rss_before = rss_kb(server.p.pid)
    row = fn()
    rss_max = sampler.done()
    row.update({"impl": impl, "scenario": scenario, "conns": conns,
                "rss_start_mb": rss_before / 1024, "rss_mb": rss_max / 1024, "load": loadavg()})
    if server.http:  # isthmus: check nothing was deduplicated (every message distinct)
        ch = server.api("/api/channels")
        c = (ch.get("channels") or [{}])[0]
        row["server"] = {k: c.get(k) for k in ("received", "acked", "nacked", "duplicates")}
    row.update(extra or {})
    results.append(row)
    log("%s | %s | %d conn | %.0f msg/s | p50 %.2f ms p99 %.2f ms | RSS %.0f MB | non-AA %s errors %s %s"
        % (impl, scenario, conns, row["msgs_per_s"], row["p50_ms"], row["p99_ms"], row["rss_mb"],
           row["non_aa"], row["errors"], row.get("server", "")))
    return row


# ---------------------------------------------------------------------------------------------
def prepare_data():
    """Tags MSH-10 with a per-run prefix (control ids distinct between runs) and writes the two
    workload files: as generated (MSH-15/16 = AL/NE -> CA) and with MSH-15/16 blanked (-> AA)."""
    tag = "R" + "".join("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[(int(time.time()) // 36 ** i) % 36]
                        for i in range(3))
    ca_path, aa_path = os.path.join(WORK, "msgs-ca.hl7"), os.path.join(WORK, "msgs-aa.hl7")
    valued15 = n = 0
    with open(A.data, "rb") as src, open(ca_path, "wb") as ca, open(aa_path, "wb") as aa:
        for line in src:
            line = line.rstrip(b"\n")
            if not line:
                continue
            end = line.find(b"\r")
            f = line[:end].split(b"|")
            f[9] = tag.encode() + f[9][3:] if f[9].startswith(b"MSG") else tag.encode() + f[9]
            if len(f) > 14 and f[14]:
                valued15 += 1
            ca.write(b"|".join(f) + line[end:] + b"\n")
            for i in (14, 15):
                if len(f) > i:
                    f[i] = b""
            aa.write(b"|".join(f) + line[end:] + b"\n")
            n += 1
    return {"tag": tag, "messages": n, "msh15_valued": valued15, "ca": ca_path, "aa": aa_path,
            "avg_bytes": os.path.getsize(A.data) / max(n, 1)}


def head_file(src, n, dst):
    with open(src, "rb") as s, open(dst, "wb") as d:
        for i, line in enumerate(s):
            if i >= n:
                break
            d.write(line)
    return dst


def fsync_rate(directory, seconds=3.0):
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    block = b"x" * 4096
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        os.write(fd, block)
        os.fsync(fd)
        n += 1
    dt = time.perf_counter() - t0
    os.close(fd)
    os.unlink(path)
    return n / dt


def machine():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    fs = subprocess.run(["df", "-T", WORK], capture_output=True, text=True).stdout.splitlines()[-1].split()
    node_v = subprocess.run([A.node, "--version"], capture_output=True, text=True).stdout.strip()
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": os.cpu_count(), "cpu": cpu, "kernel": "Linux " + platform.release(),
            "fs": "%s (%s)" % (fs[1], fs[0]), "node": node_v, "load_start": loadavg()}


# ---------------------------------------------------------------------------------------------
def scenario1(d):
    for data, label in ((d["aa"], "MSH-15/16 blanked -> AA"), (d["ca"], "as generated -> CA")):
        for conns, n in ((1, N1), (16, N16)):
            s = isthmus_server("isthmus-s1-%s-%d" % (label[:2], conns))
            extra = {"ack_note": "all CA (mllp_load counts them as NAKs: %s)" % fmt(0)} if data == d["ca"] else None
            row = measure(s, "Isthmus", "journal commit, data " + label, lambda: mllp_load(s.port, conns, n, data),
                          conns, extra)
            if extra:
                row["ack_note"] = "all CA (mllp_load counts %s as NAKs, warm-up included)" % fmt(row["non_aa"])
            s.stop()
    for conns, n in ((1, PY1), (8, PY8)):
        s = isthmus_server("isthmus-s1-py-%d" % conns)
        measure(s, "Isthmus", "journal commit, client's own ADT (MSH-15=AL -> CA)",
                lambda: py_client(s.port, conns, n), conns)
        s.stop()
    for conns, n in ((1, N1), (16, N16)):
        f = head_file(d["ca"], n, os.path.join(WORK, "send-%d.hl7" % n))
        s = isthmus_server("isthmus-s1-send-%d" % conns)
        measure(s, "Isthmus", "journal commit, data as generated -> CA",
                lambda: isthmus_send(s.port, conns, f), conns)
        s.stop()
        os.unlink(f)


def scenario3(d):
    node_dir = A.root
    peers = [
        ("C++ echo (no persistence)", [os.path.join(BUILD, "echo_server"), "--ready-file", "{ready}"], None, N16),
        ("C++ append + fdatasync, group commit", [os.path.join(BUILD, "fsync_server"), "--file", "{dir}/journal.log",
                                                  "--ready-file", "{ready}"], None, N16),
        ("simple-hl7 (node, no persistence)", [A.node, "bench/mllp/peers/node_servers.mjs", "simple-hl7",
                                               "--ready-file", "{ready}"], node_dir, NODE16),
        ("@medplum/hl7 Hl7Server (node, no persistence)", [A.node, "bench/mllp/peers/node_servers.mjs", "medplum",
                                                           "--ready-file", "{ready}"], node_dir, NODE16),
    ]
    for name, cmd, cwd, n16 in peers:
        for conns, n in ((1, min(N1, n16)), (16, n16)):
            s = Server(name, cmd, cwd=cwd)
            measure(s, name, "peer, data MSH-15/16 blanked", lambda: mllp_load(s.port, conns, n, d["aa"]), conns)
            s.stop()


def scenario2(d):
    name = "isthmus-s2-file"
    cfg_dir = os.path.join(WORK, "s2-config")
    shutil.rmtree(cfg_dir, ignore_errors=True)
    os.makedirs(cfg_dir)
    out_dir = os.path.join(WORK, "s2-out")
    shutil.rmtree(out_dir, ignore_errors=True)
    cfg = os.path.join(cfg_dir, "isthmus.yaml")
    with open(cfg, "w") as f:
        f.write("""# written by bench/mllp/run.py: MLLP -> channel -> file destination
listeners:
  - name: bench-in
    address: 127.0.0.1:0
    channel: feed
    ack_mode: after-persist
channels:
  - name: feed
    destinations: [files]
destinations:
  - name: files
    type: file
    directory: %s
""" % out_dir)
    s = isthmus_server(name, cfg)
    pid = s.p.pid
    samples = []
    t0 = time.time()

    def sample(phase):
        dst = next((x for x in s.api("/api/destinations")["destinations"] if x["name"] == "files"),
                   {"delivered": 0, "queued": 0, "in_flight": 0, "retrying": 0, "dead": 0})
        samples.append({"t": round(time.time() - t0, 1), "phase": phase, "rss_mb": rss_kb(pid) / 1024,
                        "delivered": dst["delivered"], "queued": dst["queued"] + dst["in_flight"] + dst["retrying"],
                        "dead": dst["dead"]})

    sample("start")
    client = subprocess.Popen([os.path.join(BUILD, "mllp_sustain"), "-p", str(s.port), "-c", "16",
                               "-d", str(A.duration), "-f", d["ca"], "-t", d["tag"] + "S"],
                              stdout=subprocess.PIPE, text=True)
    stopped_early = None
    while client.poll() is None:
        time.sleep(A.sample)
        if client.poll() is None:
            sample("load")
            if samples[-1]["rss_mb"] > A.rss_cap and not stopped_early:
                stopped_early = "load stopped at t = %.0f s: RSS %.0f MB passed --rss-cap %.0f MB" % (
                    samples[-1]["t"], samples[-1]["rss_mb"], A.rss_cap)
                log(stopped_early)
                client.send_signal(signal.SIGTERM)
    load = json.loads(client.stdout.read().strip().splitlines()[-1])
    t_load = time.time() - t0
    sample("load-end")
    drain_limit = A.drain
    while samples[-1]["queued"] > 0 and time.time() - t0 - t_load < drain_limit:
        time.sleep(A.sample)
        sample("drain")
    t_drain = samples[-1]["t"]
    files = sum(1 for _ in os.scandir(out_dir)) if os.path.isdir(out_dir) else 0
    data_mb = sum(os.path.getsize(os.path.join(s.dir, "data", f)) for f in os.listdir(os.path.join(s.dir, "data"))) / 2**20
    ch = s.api("/api/channels")["channels"][0]
    s.stop()
    shutil.rmtree(out_dir, ignore_errors=True)
    shutil.rmtree(cfg_dir, ignore_errors=True)

    load_samples = [x for x in samples if x["phase"] in ("load", "load-end")]
    warm = [x for x in load_samples if x["t"] >= min(30.0, A.duration / 5)]
    rss = [x["rss_mb"] for x in warm] or [x["rss_mb"] for x in load_samples]
    slope = 0.0
    if len(warm) >= 3:  # least-squares RSS trend after warm-up, MB per minute
        mt = sum(x["t"] for x in warm) / len(warm)
        mr = sum(x["rss_mb"] for x in warm) / len(warm)
        den = sum((x["t"] - mt) ** 2 for x in warm)
        slope = 60 * sum((x["t"] - mt) * (x["rss_mb"] - mr) for x in warm) / den if den else 0.0
    end_load = samples[[x["phase"] for x in samples].index("load-end")]
    row = {"impl": "Isthmus", "scenario": "MLLP -> file destination, %.0f s sustained" % A.duration,
           "conns": 16, "client": "mllp_sustain", "msgs": load["msgs"], "msgs_per_s": load["msgs_per_s"],
           "p50_ms": load["p50_us"] / 1000, "p99_ms": load["p99_us"] / 1000, "errors": load["errors"],
           "non_aa": load["nacks"], "mismatch": load["ack_mismatch"], "ack_codes": {"AA": load["aa"], "CA": load["ca"]},
           "rss_start_mb": rss[0] if rss else 0, "rss_end_mb": rss[-1] if rss else 0,
           "rss_mb": max(x["rss_mb"] for x in samples), "rss_slope_mb_per_min": slope,
           "delivered_during_load": end_load["delivered"], "delivered_rate_during_load": end_load["delivered"] / t_load,
           "backlog_at_load_end": end_load["queued"], "delivered_total": samples[-1]["delivered"],
           "backlog_final": samples[-1]["queued"], "dead": samples[-1]["dead"], "files": files,
           "t_load": t_load, "t_final": t_drain, "data_mb": data_mb, "ack_per_s": load["per_s"],
           "samples": samples, "server": {k: ch.get(k) for k in ("received", "acked", "nacked", "duplicates")},
           "stopped_early": stopped_early, "load": loadavg()}
    results.append(row)
    log("file destination: ACK %.0f msg/s, delivered %.0f msg/s during load, backlog %d at load end, "
        "%d delivered of %d by t=%.0f s, files %d, RSS %.0f -> %.0f MB (max %.0f, %+.1f MB/min)"
        % (row["msgs_per_s"], row["delivered_rate_during_load"], row["backlog_at_load_end"],
           row["delivered_total"], load["msgs"], t_drain, files, row["rss_start_mb"], row["rss_end_mb"],
           row["rss_mb"], slope))


# ---------------------------------------------------------------------------------------------
def fmt(x, nd=0):
    return ("{:,.%df}" % nd).format(x)


def table(m):
    lines = []
    lines.append("Machine: %s, %d cores (nproc), %s; data dir on %s; fsync rate %s/s (4 KiB append + fsync, %s); "
                 "node %s; load average %s at start, %s at end. Run: %s. Workload: gen_hl7.py, %s messages, "
                 "avg %.0f B, control ids tagged %s; MSH-15 valued in %s of them."
                 % (m["cpu"], m["nproc"], m["kernel"], m["fs"], fmt(m.get("fsync_per_s", 0)),
                    "same filesystem", m["node"], m["load_start"], m.get("load_end", "?"), m["date"],
                    fmt(m["messages"]), m["avg_bytes"], m["tag"], fmt(m["msh15_valued"])))
    lines.append("")
    lines.append("| implementation | scenario | client | conns | msg/s | p50 ms | p99 ms | RSS MB (max under load) | ACKs | errors | load |")
    lines.append("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in results:
        codes = r.get("codes") or r.get("ack_codes")
        if r.get("ack_note"):
            non_aa = r["ack_note"]
        elif codes:
            non_aa = ", ".join("%s %s" % (k, fmt(v)) for k, v in sorted(codes.items()) if v)
            if r["non_aa"]:
                non_aa += "; %s rejected" % fmt(r["non_aa"])
        else:
            non_aa = "AA" if not r["non_aa"] else "%s not AA" % fmt(r["non_aa"])
        if r.get("server", {}).get("duplicates"):
            non_aa += "; %s duplicates" % fmt(r["server"]["duplicates"])
        lines.append("| %s | %s | %s | %d | %s | %.2f | %.2f | %s | %s | %s | %s |" % (
            "**%s**" % r["impl"] if r["impl"] == "Isthmus" else r["impl"], r["scenario"], r["client"], r["conns"],
            fmt(r["msgs_per_s"]), r["p50_ms"], r["p99_ms"], fmt(r["rss_mb"]), non_aa, fmt(r["errors"] + r["mismatch"]),
            r["load"]))
    for r in results:
        if "delivered_rate_during_load" in r:
            lines.append("")
            lines.append("File destination (%s): ACKed %s messages at %s msg/s over %.0f s; delivered (file "
                         "written, fsynced, renamed) %s during the load = **%s msg/s**; backlog at the end of the "
                         "load %s; %s delivered and %s still queued at t = %.0f s (%s files in the directory, "
                         "%s dead); journal + queue database %s MB. RSS after warm-up %s MB -> %s MB at the end "
                         "of the load (max %s MB), trend %+.1f MB/min."
                         % (r["scenario"], fmt(r["msgs"]), fmt(r["msgs_per_s"]), r["t_load"],
                            fmt(r["delivered_during_load"]), fmt(r["delivered_rate_during_load"]),
                            fmt(r["backlog_at_load_end"]), fmt(r["delivered_total"]), fmt(r["backlog_final"]),
                            r["t_final"], fmt(r["files"]), fmt(r["dead"]), fmt(r["data_mb"]),
                            fmt(r["rss_start_mb"]), fmt(r["rss_end_mb"]), fmt(r["rss_mb"]),
                            r["rss_slope_mb_per_min"]))
            if r.get("stopped_early"):
                lines.append("")
                lines.append("**%s.**" % r["stopped_early"])
            lines.append("")
            lines.append("Samples (t s: RSS MB, delivered, queued): " + "; ".join(
                "%.0f: %.0f, %s, %s" % (x["t"], x["rss_mb"], fmt(x["delivered"]), fmt(x["queued"]))
                for x in r["samples"]))
    return "\n".join(lines) + "\n"


def main():
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(OUT, exist_ok=True)
    m = machine()
    log("workload files (tagged control ids, MSH-15/16 blanked copy)")
    d = prepare_data()
    m.update({k: d[k] for k in ("tag", "messages", "msh15_valued", "avg_bytes")})
    if "4" in ONLY:
        m["fsync_per_s"] = fsync_rate(WORK)
        log("fsync rate: %.0f/s" % m["fsync_per_s"])
    if "1" in ONLY:
        scenario1(d)
    if "3" in ONLY:
        scenario3(d)
    if "2" in ONLY:
        scenario2(d)
    if "4" in ONLY:  # again at the end: the disk may behave differently after the load
        m["fsync_per_s_end"] = fsync_rate(WORK)
    m["load_end"] = loadavg()
    with open(os.path.join(OUT, "results.jsonl"), "w") as f:
        f.write(json.dumps({"machine": m}) + "\n")
        for r in results:
            f.write(json.dumps(r) + "\n")
    md = table(m)
    if "fsync_per_s_end" in m:
        md += "\nfsync rate at the end of the run: %s/s.\n" % fmt(m["fsync_per_s_end"])
    with open(os.path.join(BUILD, "mllp-results.md"), "w") as f:
        f.write(md)
    print(md)
    for x in (d["ca"], d["aa"]):
        os.unlink(x)


main()
