#!/usr/bin/python3
"""Which B-trees a write dirtied: the frames of a database's WAL mapped to their B-trees with the
`dbstat` table (docs/PERFORMANCE.md, "FHIR server", 2026-11-22 18:35).

  bench/fhir/walstat.py DATA/isthmus.db 500      # pages per B-tree, and per 500 resources

Leave the WAL in place first (stop the server with SIGKILL after the write: a clean shutdown
checkpoints it away), e.g. `bench/fhir/ab1m.py ... --bundles 1 --conns 1 --kill`. Reads the WAL's
frames of complete transactions; `sqlite3` (the CLI) maps the pages, on a copy.
"""
import struct, sys, subprocess, collections, shutil, os, tempfile
db = sys.argv[1]; wal = db + "-wal"
data = open(wal, "rb").read()
ps = struct.unpack(">I", data[8:12])[0]
off = 32; frames = []; commits = []
salt = data[16:24]
while off + 24 + ps <= len(data):
    pg, commit = struct.unpack(">II", data[off:off+8])
    if data[off+8:off+16] != salt: break
    frames.append(pg)
    if commit: commits.append(len(frames))
    off += 24 + ps
# only frames of complete transactions
frames = frames[:commits[-1]] if commits else []
print("page size", ps, "frames", len(frames), "commits", len(commits), "distinct pages", len(set(frames)))
# map pages to btrees: dbstat over a copy with the WAL applied (name per pageno)
tmp = tempfile.mkdtemp()
shutil.copy(db, tmp + "/x.db"); shutil.copy(wal, tmp + "/x.db-wal")
out = subprocess.run(["sqlite3", tmp + "/x.db", "select pageno, name from dbstat"], capture_output=True, text=True).stdout
owner = {}
for l in out.splitlines():
    p, n = l.split("|", 1); owner[int(p)] = n
shutil.rmtree(tmp)
by = collections.Counter(owner.get(p, "?free/overflow") for p in frames)
dis = collections.Counter(owner.get(p, "?free/overflow") for p in set(frames))
n = float(sys.argv[2]) if len(sys.argv) > 2 else 1
print("%-40s %8s %8s %10s %10s" % ("btree", "frames", "distinct", "frames/res", "dist/res"))
for k, v in by.most_common():
    print("%-40s %8d %8d %10.2f %10.2f" % (k, v, dis[k], v / n, dis[k] / n))
print("%-40s %8d %8d %10.2f %10.2f" % ("TOTAL", len(frames), len(set(frames)), len(frames) / n, len(set(frames)) / n))
