"""End-to-end: `isthmus serve` on a disk that fills up, then gets space back.

The data directory is a small tmpfs (a real file system that answers ENOSPC), mounted by the
test; that needs root, so the test skips with a message elsewhere. What must hold:
- every message gets an answer: AA once it is durably journaled, AR with ERR 207 ("could not be
  stored, send it again") when the journal cannot store it; the connection and the server stay up;
- when space comes back the same server stores messages again, with no restart;
- nothing ACKed is lost or stored twice, nothing NAKed is stored, and every ACKed message is
  processed (the default channel converts it to FHIR and stores it: that write also hit the full
  disk and must have been retried, not dropped);
- a file destination on a full disk retries (not dead letters), leaves no partial file, and
  delivers every message exactly once, byte for byte, when space returns.
"""
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.error

from serve_test import MllpClient, Server, msa, wait_for

SIZE_MB = 64
BALLAST_MB = 8

# A file destination writing to the small disk; the journal is on the normal one.
FILE_CONFIG = """
listeners:
  - name: main
    address: 127.0.0.1:0
    channel: feed
channels:
  - name: feed
    destinations: [files]
destinations:
  - name: files
    type: file
    directory: {out}
    filename: "${{control_id}}-${{message_id}}.hl7"
    batch_size: 20
    retry:
      max_attempts: 10000
      initial_backoff: 100ms
      max_backoff: 500ms
"""


def padded_adt(control_id):
    # ~2 KB per message, so the disk fills after a few thousand.
    note = "NTE|1||" + ("free text of the clinical note " * 60) + "\r"
    return ("MSH|^~\\&|LAB|HOSP|ISTHMUS|HOSP|20240101120000||ADT^A01^ADT_A01|%s|P|2.5.1\r"
            "EVN|A01|20240101120000\rPID|1||%s^^^HOSP^MR||DOE^JANE||19800101|F\r"
            "PV1|1|I|W1^101^A\r%s" % (control_id, control_id, note))


class FullDiskTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.mnt = os.path.join(self.tmp, "small-disk")
        os.makedirs(self.mnt)
        if os.geteuid() != 0:
            shutil.rmtree(self.tmp)
            self.skipTest("needs root to mount a %d MB tmpfs as the full disk" % SIZE_MB)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % SIZE_MB, "tmpfs", self.mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            shutil.rmtree(self.tmp)
            self.skipTest("cannot mount a tmpfs here: " + r.stderr.strip())
        self.server = None

    def tearDown(self):
        if self.server is not None:
            self.server.stop()
        subprocess.run(["umount", "-l", self.mnt], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def state_of(self, server, cid):
        found = server.get("/api/messages?control_id=" + cid)[1]
        return found["total"], [m["state"] for m in found["messages"]]

    def test_disk_full_naks_then_recovers_without_losing_acked_messages(self):
        ballast = os.path.join(self.mnt, "ballast")
        with open(ballast, "wb") as f:
            f.write(b"\0" * (BALLAST_MB << 20))
        data = os.path.join(self.mnt, "data")
        logs = os.path.join(self.tmp, "logs")
        os.makedirs(logs)
        self.server = server = Server(data, log_dir=logs)
        client = MllpClient(server.mllp_port, timeout=30)
        acked, naked = [], []
        i = 0
        while len(naked) < 20 and i < 20000:
            cid = "F%05d" % i
            i += 1
            ack = client.send(padded_adt(cid))
            self.assertIsNotNone(ack, "no reply to %s (connection closed): %s" % (cid, server.read_log()[-2000:]))
            code = msa(ack)[1]
            if code == "AA":
                acked.append(cid)
            else:
                self.assertEqual(code, "AR", ack)
                self.assertIn("207^", ack)
                self.assertIn("could not be stored", ack)
                naked.append(cid)
        self.assertGreaterEqual(len(naked), 20, "the disk never filled after %d messages" % i)
        self.assertGreater(len(acked), 50)
        self.assertIsNone(server.proc.poll(), "the server died on a full disk: " + server.read_log()[-2000:])
        self.assertEqual(server.get("/healthz")[0], 200)

        # Space comes back: the same server, the same connection, stores messages again.
        os.remove(ballast)
        deadline = time.time() + 30
        while True:
            cid = "F%05d" % i
            i += 1
            code = msa(client.send(padded_adt(cid)))[1]
            if code == "AA":
                acked.append(cid)
                break
            naked.append(cid)
            self.assertLess(time.time(), deadline, "still not storing 30 s after space came back")
            time.sleep(0.2)
        for _ in range(20):
            cid = "F%05d" % i
            i += 1
            self.assertEqual(msa(client.send(padded_adt(cid)))[1], "AA", cid)
            acked.append(cid)
        client.close()

        # Every ACKed message is stored once and gets processed; nothing NAKed was stored.
        for cid in acked:
            try:
                total, states = wait_for(lambda: self.state_of(server, cid),
                                         lambda v: v[0] == 1 and v[1][0] not in ("received",), timeout=60)
            except AssertionError:
                mid = server.get("/api/messages?control_id=" + cid)[1]["messages"][0]["id"]
                raise AssertionError("%s (acked #%d of %d) not processed: %r\n%s" % (
                    cid, acked.index(cid), len(acked), server.get("/api/messages/%s" % mid)[1].get("events"),
                    server.read_log()[-3000:]))
            self.assertEqual(total, 1, cid)
        for cid in naked:
            self.assertEqual(self.state_of(server, cid)[0], 0, cid)
        self.assertEqual(server.stop(), 0, server.read_log()[-2000:])

        # And after a restart, the journal still holds exactly the ACKed ones.
        self.server = server = Server(data, log_dir=logs)
        for cid in acked[::25] + acked[-3:]:
            self.assertEqual(self.state_of(server, cid)[0], 1, cid)

    def test_file_destination_on_a_full_disk_retries_and_delivers_everything_once(self):
        # 512 KB of the small disk stays free: room for some of the 300 files (4 KB each), not all.
        with open(os.path.join(self.mnt, "ballast"), "wb") as f:
            f.write(b"\0" * ((SIZE_MB << 20) - (512 << 10)))
        out = os.path.join(self.mnt, "out")
        data = os.path.join(self.tmp, "data")
        os.makedirs(data)
        config = os.path.join(self.tmp, "isthmus.yaml")
        with open(config, "w") as f:
            f.write(FILE_CONFIG.format(out=out))
        self.server = server = Server(data, extra=("--config", config))
        client = MllpClient(server.mllp_port, timeout=30)
        sent = {}
        for i in range(300):
            cid = "D%05d" % i
            sent[cid] = padded_adt(cid)
            self.assertEqual(msa(client.send(sent[cid]))[1], "AA", cid)  # the journal has room
        client.close()

        def files():
            return {d["name"]: d for d in server.get("/api/destinations")[1]["destinations"]}["files"]
        # The disk fills: deliveries fail as retryable (ENOSPC), none is dead-lettered.
        stuck = wait_for(files, lambda d: d["retrying"] + d["queued"] > 0 and d["delivered"] > 0, timeout=30)
        time.sleep(1.0)
        stuck = files()
        self.assertLess(stuck["delivered"], 300, stuck)
        self.assertEqual(stuck["dead"], 0)
        # A failed run leaves no partial or temporary file behind.
        names = os.listdir(out)
        self.assertFalse([n for n in names if not n.endswith(".hl7") or n.startswith(".")], names)

        os.remove(os.path.join(self.mnt, "ballast"))
        done = wait_for(files, lambda d: d["delivered"] == 300, timeout=60)
        self.assertEqual((done["queued"], done["retrying"], done["dead"]), (0, 0, 0))
        names = sorted(os.listdir(out))
        self.assertEqual(len(names), 300, names[:5])
        by_cid = {n.split("-")[0]: n for n in names}
        self.assertEqual(sorted(by_cid), sorted(sent))  # each message once, nothing else
        for cid, raw in sent.items():
            with open(os.path.join(out, by_cid[cid]), "rb") as f:
                self.assertEqual(f.read(), raw.encode(), cid)


if __name__ == "__main__":
    unittest.main()
