#!/usr/bin/python3
"""Pages a by-value index dirties per row (docs/PERFORMANCE.md, "FHIR server", 2026-11-22 18:35):
a table shaped like fhir_idx_quantity (WITHOUT ROWID, clustered by resource) with its by-value
index, filled with N rows in time-ordered ids and repeating values (the benchmark's vital
signs), 400 rows per transaction; then, over the last 20 transactions, the index pages each one
wrote to the WAL, per row. VARIANT `plain` indexes (res_type, param, value) as the store does,
`rnd` puts the id's random tail before the id, `int` keys rows by an integer resource key
instead of the type name and the id text; PAGE is the page size.

  bench/fhir/byvalue_pages.py 400000 plain 4096 /tmp      # -> 1.71 pages per row
"""
import os, random, sqlite3, struct, sys, time
N = int(sys.argv[1]); variant = sys.argv[2]; page = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
path = os.path.join(sys.argv[4] if len(sys.argv) > 4 else ".", "byvalue-%s-%d.db" % (variant, page))
for f in (path, path + "-wal", path + "-shm"):
    if os.path.exists(f): os.remove(f)
d = sqlite3.connect(path, isolation_level=None)
d.executescript("PRAGMA page_size=%d; PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;" % page)
if variant == "int":  # an integer resource key instead of the type name and the id text
    d.execute("CREATE TABLE q (res_key INTEGER, param TEXT, value REAL, system TEXT, code TEXT, grp INT, "
              "PRIMARY KEY (res_key, param, value, system, code, grp)) WITHOUT ROWID")
else:
    d.execute("CREATE TABLE q (res_type TEXT, res_id TEXT, param TEXT, value REAL, system TEXT, code TEXT, "
              "grp INT, PRIMARY KEY (res_type, res_id, param, value, system, code, grp)) WITHOUT ROWID")
if variant == "int":
    d.execute("CREATE INDEX q_by_value ON q (param, value)")
elif variant == "plain":
    d.execute("CREATE INDEX q_by_value ON q (res_type, param, value)")
else:
    d.execute("CREATE INDEX q_by_value ON q (res_type, param, value, substr(res_id, 25))")
rng = random.Random(1); base = [60, 70, 36, 98, 120, 80, 16, 70, 170, 25, 90, 100]
def rows(start, n):
    out = []
    for k in range(start, start + n):
        t = 0x018f00000000 + k * 3  # time-ordered prefix, like UUIDv7
        rid = "%08x-%04x-7%03x-%04x-%012x" % (t >> 16, t & 0xFFFF, rng.getrandbits(12), 0x8000 | rng.getrandbits(14), rng.getrandbits(48))
        v = base[k % 12] + (k % 400) / 10.0
        if variant == "int":
            out.append((k, "value-quantity", v, "http://unitsofmeasure.org", "/min", 0))
        else:
            out.append(("Observation", rid, "value-quantity", v, "http://unitsofmeasure.org", "/min", 0))
    return out
B = 400; measured = []
for start in range(0, N, B):
    last = start + B >= N - 20 * B
    if last:
        d.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rs = rows(start, B)
    d.execute("BEGIN"); d.executemany("INSERT INTO q VALUES (%s)" % ",".join("?" * len(rs[0])), rs); d.execute("COMMIT")
    if last:
        wal = open(path + "-wal", "rb").read(); ps = struct.unpack(">I", wal[8:12])[0]
        pages = set(); off = 32
        while off + 24 + ps <= len(wal):
            pages.add(struct.unpack(">I", wal[off:off + 4])[0]); off += 24 + ps
        idx = {r[0] for r in d.execute("SELECT pageno FROM dbstat WHERE name = 'q_by_value'")}
        measured.append(len(pages & idx) / B)
    elif start % (50 * B) == 0:
        d.execute("PRAGMA wal_checkpoint(TRUNCATE)")
st = d.execute("SELECT count(*), sum(ncell) FROM dbstat WHERE name = 'q_by_value' AND pagetype = 'leaf'").fetchone()
print("%s, %d-byte pages: %d rows; index pages dirtied per row over the last %d transactions of %d: %.2f (min %.2f max %.2f); leaves %d, %.1f rows per leaf" % (
    variant, page, N, len(measured), B, sum(measured) / len(measured), min(measured), max(measured), st[0], st[1] / st[0]))
