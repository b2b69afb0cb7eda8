#!/usr/bin/python3
"""Transactions on a large store, one binary at a time (docs/PERFORMANCE.md, "FHIR server",
2026-11-22 18:35): `isthmus serve` (BIN) on a fresh copy of a kept data directory (--src, e.g.
the one `bench/fhir/run.py --keep` leaves in BUILD/fhir-work/data), --bundles transaction Bundles
of 500 from --conns connections (fhir_load), and one line: resources/s, the writer thread's CPU
per resource (user, system), the share of the wall time it ran and waited for a CPU
(/proc/PID/task/TID/schedstat), its I/O per resource (/proc/PID/task/TID/io), load average.
Run two binaries alternately for an A/B at 1,000,000 stored without loading twice:

  for i in 1 2 3; do bench/fhir/ab1m.py /tmp/a/isthmus --src KEPT --load BUILD/fhir_load
                     bench/fhir/ab1m.py /tmp/b/isthmus --src KEPT --load BUILD/fhir_load; done

--mode create posts Patients (POST /fhir/Patient) from --conns connections for --seconds instead
(e.g. --conns 16 --seconds 20), and adds the CPU per create of every thread of the server by
name (writer, the HTTP handler pool under the binary's name, net-N event loop), and the writer's
process's fdatasync calls (perf stat -p, tracepoint syscalls:sys_enter_fdatasync): with
synchronous=FULL one per group commit (plus checkpoints), so creates per fdatasync is about the
size of a group commit; a writer that syncs the WAL on a thread of its own after commits
(wal-sync) covers several commits with one sync, and then it is an upper bound.

--kill stops the server with SIGKILL, leaving the WAL for bench/fhir/walstat.py. A binary with a
newer schema migrates the copy first (the time to ready is printed).
"""
import argparse, os, shutil, subprocess, sys, time, json
P = argparse.ArgumentParser()
P.add_argument("bin"); P.add_argument("--bundles", type=int, default=20); P.add_argument("--conns", type=int, default=2)
P.add_argument("--kill", action="store_true"); P.add_argument("--dir", default="/tmp/fhir-ab1m"); P.add_argument("--tag", default="X")
P.add_argument("--env", action="append", default=[]); P.add_argument("--src", required=True)
P.add_argument("--load", required=True, help="the fhir_load binary")
P.add_argument("--mode", choices=["transaction", "create"], default="transaction")
P.add_argument("--seconds", type=float, default=20, help="duration of --mode create")
A = P.parse_args()
shutil.rmtree(A.dir, ignore_errors=True); os.makedirs(A.dir)
shutil.copytree(A.src, A.dir + "/data")
open(A.dir + "/cfg.yaml", "w").write("listeners: []\nchannels: []\n")
env = dict(os.environ); env.update(kv.split("=", 1) for kv in A.env)
srv = subprocess.Popen([A.bin, "serve", "--config", A.dir + "/cfg.yaml", "--data", A.dir + "/data", "--http", "127.0.0.1:0",
                        "--ready-file", A.dir + "/ready"], stdout=open(A.dir + "/server.log", "w"), stderr=subprocess.STDOUT, env=env)
t0 = time.time()
while not (os.path.exists(A.dir + "/ready") and open(A.dir + "/ready").read().strip()):
    if srv.poll() is not None: sys.exit("server died")
    time.sleep(0.05)
port = int(open(A.dir + "/ready").read().split()[1]); ready_s = time.time() - t0
pid = srv.pid; TCK = os.sysconf("SC_CLK_TCK")
def wtid():
    for t in os.listdir("/proc/%d/task" % pid):
        if open("/proc/%d/task/%s/comm" % (pid, t)).read().strip() == "writer": return t
W = wtid()
def snap():
    f = open("/proc/%d/task/%s/stat" % (pid, W)).read().rsplit(")", 1)[1].split()
    ss = list(map(int, open("/proc/%d/task/%s/schedstat" % (pid, W)).read().split()))
    io = dict(l.split(": ") for l in open("/proc/%d/task/%s/io" % (pid, W)).read().splitlines())
    pf = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return dict(u=int(f[11]) / TCK, s=int(f[12]) / TCK, run=ss[0] / 1e9, wait=ss[1] / 1e9, pu=(int(pf[11]) + int(pf[12])) / TCK,
                **{k: int(v) for k, v in io.items()}, t=time.time())
def threads():
    """CPU seconds per thread name (the pool's threads carry the binary's name)."""
    out = {}
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            comm = open("/proc/%d/task/%s/comm" % (pid, t)).read().strip()
            f = open("/proc/%d/task/%s/stat" % (pid, t)).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = "net" if comm.startswith("net-") else "pool" if comm == os.path.basename(A.bin)[:15] else comm
        out[name] = out.get(name, 0) + (int(f[11]) + int(f[12])) / TCK
    return out
la0 = open("/proc/loadavg").read().split()[0]
if A.mode == "create":
    load = [A.load, "--port", str(port), "--mode", "create", "--conns", str(A.conns), "--seconds", str(A.seconds), "--tag", A.tag]
    perf = subprocess.Popen(["perf", "stat", "-x", ",", "-e", "syscalls:sys_enter_fdatasync", "-p", str(pid), "--", "sleep", str(A.seconds + 0.5)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
else:
    load = [A.load, "--port", str(port), "--mode", "transaction", "--conns", str(A.conns), "--requests", str(A.bundles), "--tag", A.tag]
a = snap(); ta = threads()
r = subprocess.run(load, capture_output=True, text=True)
b = snap(); tb = threads()
res = json.loads([l for l in r.stdout.splitlines() if l.startswith("{")][-1])
n = res["resources"]; dt = b["t"] - a["t"]
la1 = open("/proc/loadavg").read().split()[0]
print("%s %s: %.0f res/s p50 %.0f ms | writer ms/res user %.4f sys %.4f (cpu %.4f) ; run %.2f runq-wait %.2f of wall | proc cpu ms/res %.4f | per res: wchar %.1f KB syscw %.1f rchar %.1f KB syscr %.1f | load %s/%s | ready %.1fs errors %d" % (
    os.path.basename(A.bin), A.mode if A.mode == "create" else "bundles %d" % A.bundles, res["resources_per_s"], res["p50_ms"], (b["u"] - a["u"]) * 1e3 / n, (b["s"] - a["s"]) * 1e3 / n,
    (b["u"] + b["s"] - a["u"] - a["s"]) * 1e3 / n, (b["run"] - a["run"]) / dt, (b["wait"] - a["wait"]) / dt, (b["pu"] - a["pu"]) * 1e3 / n,
    (b["wchar"] - a["wchar"]) / n / 1e3, (b["syscw"] - a["syscw"]) / n, (b["rchar"] - a["rchar"]) / n / 1e3, (b["syscr"] - a["syscr"]) / n, la0, la1, ready_s, res["errors"]), flush=True)
if A.mode == "create":
    syncs = [l for l in perf.communicate()[1].splitlines() if "fdatasync" in l]
    nsync = int(syncs[0].split(",")[0]) if syncs and syncs[0].split(",")[0].isdigit() else 0
    print("  create: %d requests p99 %.1f ms | cpu ms/create: %s | fdatasync %d: %.1f creates per fdatasync" % (
        n, res["p99_ms"], ", ".join("%s %.4f" % (k, (tb[k] - ta.get(k, 0)) * 1e3 / n) for k in sorted(tb) if tb[k] - ta.get(k, 0) > 0),
        nsync, n / max(nsync, 1)), flush=True)
if A.kill: srv.kill()
else: srv.terminate()
srv.wait()
