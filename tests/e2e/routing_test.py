"""End-to-end routing: `isthmus serve --config` with a filter, conditional routes, a Lua
transformer, a file destination and a downstream MLLP system (a socket peer in this test) that
goes down, comes back, and answers AE; kill -9 with deliveries queued; dead letters reprocessed.
"""
import os
import signal
import socket
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

from serve_test import MllpClient, Server, msa, wait_for

VT, FS, CR = b"\x0b", b"\x1c", b"\r"

# The head of the configurations below: a data directory, the admin API and one MLLP listener
# (both on free ports) into channel adt.
SERVE_HEAD = """
server:
  data_dir: {data}
  http_address: 127.0.0.1:0
listeners:
  - name: main
    address: 127.0.0.1:0
    channel: adt
"""


def adt(control_id, patient_class="I", mrn="MRN1", trigger="A01"):
    return ("MSH|^~\\&|REG|HOSP|ISTHMUS|HOSP|20240101120000||ADT^%s^ADT_A01|%s|P|2.5.1\r"
            "EVN|%s|20240101120000\rPID|1||%s^^^HOSP^MR||DOE^JANE||19800101|F\r"
            "PV1|1|%s|W1^101^A\r" % (trigger, control_id, trigger, mrn, patient_class))


class DownstreamPeer:
    """A legacy MLLP system: answers each frame with AA (or AE), or is down."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.listener.close()  # reopened on the same port by start()
        self.code = "AA"
        self.delay = 0  # seconds before each ACK (a slow system)
        self.received = []  # control ids, in arrival order
        self.lock = threading.Lock()
        self.running = False
        self.thread = None

    def start(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(16)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def stop(self):
        if not self.running:
            return
        self.running = False
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        if self.thread:
            self.thread.join(5)

    def _serve(self):
        self.listener.settimeout(0.2)
        while self.running:
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        buf = b""
        conn.settimeout(0.5)
        while self.running:
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while FS in buf:
                frame, _, buf = buf.partition(FS)
                buf = buf[1:] if buf[:1] == CR else buf
                text = frame.lstrip(VT).decode()
                msh = text.split("\r")[0].split("|")
                control_id = msh[9]
                with self.lock:
                    self.received.append(control_id)
                    code = self.code
                if self.delay:
                    time.sleep(self.delay)
                ack = "MSH|^~\\&|DOWN|HOSP|ISTHMUS|HOSP|20240101||ACK^A01^ACK|X%s|P|2.5.1\rMSA|%s|%s\r" % (
                    control_id, code, control_id)
                try:
                    conn.sendall(VT + ack.encode() + FS + CR)
                except OSError:
                    break
        conn.close()

    def ids(self):
        with self.lock:
            return list(self.received)


CONFIG = SERVE_HEAD + """channels:
  - name: adt
    filter: type = ADT
    transformer:
      type: lua
      script: {script}
    routes:
      - when: PV1-2 = I
        to: [inpatient-files]
      - to: [downstream]
destinations:
  - name: inpatient-files
    type: file
    directory: {files}
    filename: "${{control_id}}-${{message_id}}.hl7"
  - name: downstream
    type: mllp
    address: 127.0.0.1:{peer}
    timeout: 2s
    partition_by: PID-3
    retry:
      initial_backoff: 100ms
      max_backoff: 500ms
      max_attempts: 1000
"""

SCRIPT = """
-- Stamps the receiving facility, drops test patients.
function transform(msg)
  if msg:get("PID-5.1") == "TEST" then
    return false, "test patient"
  end
  msg:set("MSH-6", "MAIN-HOSPITAL")
end
"""


class RoutingTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.files = os.path.join(self.tmp.name, "files")
        self.peer = DownstreamPeer()
        script = os.path.join(self.tmp.name, "stamp.lua")
        with open(script, "w") as f:
            f.write(SCRIPT)
        self.config = os.path.join(self.tmp.name, "isthmus.yaml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(data=os.path.join(self.tmp.name, "data"), script=script,
                                  files=self.files, peer=self.peer.port))
        self.server = None

    def tearDown(self):
        if self.server:
            self.server.stop(signal.SIGKILL)
        self.peer.stop()
        self.tmp.cleanup()

    def start(self):
        self.server = Server(self.tmp.name, extra=["--config", self.config])
        return self.server

    def send_all(self, messages):
        c = MllpClient(self.server.mllp_port)
        for m in messages:
            self.assertEqual(msa(c.send(m))[1], "AA")
        c.close()

    def test_filter_routes_transformer_and_file_destination(self):
        self.peer.start()
        self.start()
        test_patient = adt("T1").replace("DOE^JANE", "TEST^PATIENT")
        orm = adt("O1").replace("ADT^A01^ADT_A01", "ORM^O01^ORM_O01")
        self.send_all([adt("I1", "I"), adt("O2", "O"), test_patient, orm])
        # Inpatient: a file (transformed) and downstream; outpatient: downstream only.
        # Files appear atomically (written as hidden temp files, then renamed).
        listing = lambda: sorted(n for n in os.listdir(self.files) if not n.startswith(".")) \
            if os.path.isdir(self.files) else []
        names = wait_for(listing, lambda names: len(names) == 1)
        self.assertRegex(names[0], r"^I1-\d+\.hl7$")
        with open(os.path.join(self.files, names[0])) as f:
            self.assertIn("|ISTHMUS|MAIN-HOSPITAL|", f.read())
        wait_for(self.peer.ids, lambda ids: sorted(ids) == ["I1", "O2"])
        states = {}
        for cid in ("I1", "O2", "T1", "O1"):
            m = self.server.get("/api/messages?control_id=" + cid)[1]["messages"][0]
            states[cid] = wait_for(lambda: self.server.get("/api/messages/%d" % m["id"])[1],
                                   lambda d: d["state"] not in ("received", "queued"))["state"]
        self.assertEqual(states["T1"], "filtered")   # the Lua script dropped it
        self.assertEqual(states["O1"], "filtered")   # the channel filter (type = ADT)
        self.assertIn(states["I1"], ("delivered:inpatient-files", "delivered:downstream"))
        self.assertEqual(states["O2"], "delivered:downstream")

    def test_downstream_down_then_back_delivers_everything_in_order(self):
        self.start()  # the peer is down
        ids = ["D%02d" % i for i in range(20)]
        self.send_all([adt(i, "O") for i in ids])
        # Queued and retrying while the peer is down; the sender got its ACKs anyway.
        dest = wait_for(lambda: {d["name"]: d for d in self.server.get("/api/destinations")[1]["destinations"]},
                        lambda ds: "downstream" in ds and ds["downstream"]["retrying"] >= 1)
        self.assertEqual(dest["downstream"]["delivered"], 0)
        self.peer.start()
        wait_for(self.peer.ids, lambda got: len(set(got)) == 20, timeout=30)
        # One partition (one patient): delivered in the order received, each at least once.
        got = self.peer.ids()
        first_seen = sorted(set(got), key=got.index)
        self.assertEqual(first_seen, ids)
        wait_for(lambda: {d["name"]: d for d in self.server.get("/api/destinations")[1]["destinations"]},
                 lambda ds: ds["downstream"]["delivered"] == 20 and ds["downstream"]["queued"] == 0)

    def test_one_destination_down_does_not_block_another(self):
        self.start()  # the downstream peer is down; the file destination is not
        ids = ["B%02d" % i for i in range(10)]
        self.send_all([adt(i, "I") for i in ids])  # inpatient: routed to both
        ds = wait_for(lambda: {d["name"]: d for d in self.server.get("/api/destinations")[1]["destinations"]},
                      lambda ds: ds.get("inpatient-files", {}).get("delivered") == 10)
        self.assertEqual(ds["downstream"]["delivered"], 0)
        self.assertEqual(ds["downstream"]["queued"] + ds["downstream"]["in_flight"], 10)
        names = [n for n in os.listdir(self.files) if not n.startswith(".")]
        self.assertEqual(sorted(n.split("-")[0] for n in names), ids)
        # The first message: delivered to the files, retrying downstream; the last still queued
        # there behind it (FIFO: not attempted while the head is retried).
        first = self.server.get("/api/messages?control_id=B00")[1]["messages"][0]["id"]
        d = wait_for(lambda: self.server.get("/api/messages/%d" % first)[1]["destinations"],
                     lambda d: [x["status"] for x in d] == ["delivered", "retrying"])
        self.assertEqual([x["name"] for x in d], ["inpatient-files", "downstream"])
        self.assertTrue(d[1]["reason"])
        last = self.server.get("/api/messages?control_id=B09")[1]["messages"][0]["id"]
        self.assertEqual([(x["name"], x["status"]) for x in
                          self.server.get("/api/messages/%d" % last)[1]["destinations"]],
                         [("inpatient-files", "delivered"), ("downstream", "queued")])
        # The peer comes back: its queue drains too, in order.
        self.peer.start()
        wait_for(self.peer.ids, lambda got: len(set(got)) == 10, timeout=30)
        got = self.peer.ids()
        self.assertEqual(sorted(set(got), key=got.index), ids)

    def test_sigterm_finishes_the_delivery_in_flight(self):
        self.peer.delay = 1.5
        self.peer.start()
        self.start()
        self.send_all([adt("G1", "O")])
        wait_for(self.peer.ids, lambda got: got == ["G1"])  # the peer holds its ACK
        self.assertEqual(self.server.stop(signal.SIGTERM), 0)
        # The delivery finished before the exit: its ACK was recorded, so a restart does not
        # send it again (after kill -9 it would: at-least-once).
        self.peer.delay = 0
        self.start()
        m = self.server.get("/api/messages?control_id=G1")[1]["messages"][0]
        self.assertEqual(m["state"], "delivered:downstream")
        time.sleep(0.5)
        self.assertEqual(self.peer.ids(), ["G1"])

    def test_ae_is_dead_lettered_and_reprocessed(self):
        self.peer.code = "AE"
        self.peer.start()
        self.start()
        self.send_all([adt("AE1", "O")])
        dead = wait_for(lambda: self.server.get("/api/dead-letters")[1]["dead_letters"],
                        lambda d: len(d) == 1)[0]
        self.assertEqual(dead["destination"], "downstream")
        self.assertIn("AE", dead["reason"])
        self.peer.code = "AA"
        req = urllib.request.Request("http://127.0.0.1:%d/api/dead-letters/reprocess?id=%d" % (
            self.server.http_port, dead["id"]), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            self.assertEqual(r.status, 200)
        wait_for(lambda: {d["name"]: d for d in self.server.get("/api/destinations")[1]["destinations"]},
                 lambda ds: ds["downstream"]["delivered"] == 1 and ds["downstream"]["dead"] == 0)
        self.assertEqual(self.peer.ids(), ["AE1", "AE1"])

    def test_kill_9_with_deliveries_queued_loses_nothing(self):
        self.start()  # the peer is down: everything stays queued
        ids = ["K%02d" % i for i in range(30)]
        self.send_all([adt(i, "O", mrn="P%d" % (n % 3)) for n, i in enumerate(ids)])
        wait_for(lambda: {d["name"]: d for d in self.server.get("/api/destinations")[1]["destinations"]},
                 lambda ds: "downstream" in ds and ds["downstream"]["queued"] + ds["downstream"]["in_flight"] == 30)
        self.server.proc.send_signal(signal.SIGKILL)
        self.server.proc.wait()
        self.server.log.close()
        self.peer.start()
        self.start()
        wait_for(self.peer.ids, lambda got: set(got) == set(ids), timeout=30)
        # Per patient (partition), the order received is kept.
        got = self.peer.ids()
        for p in range(3):
            expected = [i for n, i in enumerate(ids) if n % 3 == p]
            seen = [i for i in sorted(set(got), key=got.index) if i in expected]
            self.assertEqual(seen, expected)


class RetryPolicyTest(unittest.TestCase):
    """A destination's retry settings in isthmus.yaml reach its dispatcher: max_attempts and
    max_age end retries of a system that stays down with a dead letter giving the reason."""

    CONFIG = SERVE_HEAD + """channels:
  - name: adt
    routes:
      - to: [by-attempts, by-age]
destinations:
  - name: by-attempts
    type: mllp
    address: 127.0.0.1:{peer}
    retry:
      initial_backoff: 50ms
      max_backoff: 50ms
      max_attempts: 3
      max_age: 1h
  - name: by-age
    type: mllp
    address: 127.0.0.1:{peer}
    retry:
      initial_backoff: 50ms
      max_backoff: 50ms
      max_attempts: 1000000
      max_age: 600ms
"""

    def test_max_attempts_and_max_age_dead_letter_with_the_reason(self):
        with tempfile.TemporaryDirectory() as tmp:
            peer = DownstreamPeer()  # never started: connections are refused (retryable)
            config = os.path.join(tmp, "isthmus.yaml")
            with open(config, "w") as f:
                f.write(self.CONFIG.format(data=os.path.join(tmp, "data"), peer=peer.port))
            server = Server(tmp, extra=["--config", config])
            try:
                c = MllpClient(server.mllp_port)
                self.assertEqual(msa(c.send(adt("Y1")))[1], "AA")
                c.close()
                dead = wait_for(lambda: server.get("/api/dead-letters")[1]["dead_letters"],
                                lambda d: len(d) == 2, timeout=20)
                by = {d["destination"]: d for d in dead}
                self.assertEqual(by["by-attempts"]["attempts"], 3)
                self.assertIn("gave up after 3 attempts (max_attempts)", by["by-attempts"]["reason"])
                self.assertIn("max_age", by["by-age"]["reason"])
                # Attempts without a practical limit, 50 ms apart, for 600 ms: more than 3 before the age ended it.
                self.assertGreater(by["by-age"]["attempts"], 3)
            finally:
                server.stop()


class ReloadTest(unittest.TestCase):
    """Hot reload: a valid configuration is applied without dropping connections or messages; an
    invalid one is refused and the running configuration keeps serving."""

    BASE = SERVE_HEAD + """channels:
  - name: adt
    filter: {filter}
    routes:
      - to: [{to}]
destinations:
  - name: downstream
    type: mllp
    address: 127.0.0.1:{peer}
  - name: files
    type: file
    directory: {files}
"""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.files = os.path.join(self.tmp.name, "files")
        self.peer = DownstreamPeer()
        self.peer.start()
        self.config = os.path.join(self.tmp.name, "isthmus.yaml")
        self.write(filter="type = ADT", to="downstream")
        self.server = Server(self.tmp.name, extra=["--config", self.config])

    def tearDown(self):
        self.server.stop(signal.SIGKILL)
        self.peer.stop()
        self.tmp.cleanup()

    def write(self, **kw):
        with open(self.config, "w") as f:
            f.write(self.BASE.format(data=os.path.join(self.tmp.name, "data"), files=self.files,
                                     peer=self.peer.port, **kw))

    def reload(self):
        req = urllib.request.Request("http://127.0.0.1:%d/api/config/reload" % self.server.http_port,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def file_count(self):
        if not os.path.isdir(self.files):
            return 0
        return len([n for n in os.listdir(self.files) if not n.startswith(".")])

    def test_reload_applies_new_routes_and_keeps_connections(self):
        c = MllpClient(self.server.mllp_port)
        self.assertEqual(msa(c.send(adt("R1", "O")))[1], "AA")
        wait_for(self.peer.ids, lambda ids: ids == ["R1"])
        self.write(filter="type = ADT", to="downstream, files")
        status, body = self.reload()
        self.assertEqual(status, 200, body)
        self.assertIn("1 kept", body)
        # The same connection still works, and the new route applies.
        self.assertEqual(msa(c.send(adt("R2", "O")))[1], "AA")
        wait_for(self.peer.ids, lambda ids: ids == ["R1", "R2"])
        wait_for(self.file_count, lambda n: n == 1)
        c.close()

    def test_invalid_configuration_is_refused_and_the_old_one_keeps_serving(self):
        with open(self.config, "a") as f:
            f.write("  - name: broken\n    type: carrier-pigeon\n")
        status, body = self.reload()
        self.assertEqual(status, 400, body)
        self.assertRegex(body, r"isthmus\.yaml:\d+:\d+:")
        c = MllpClient(self.server.mllp_port)
        self.assertEqual(msa(c.send(adt("S1", "O")))[1], "AA")
        wait_for(self.peer.ids, lambda ids: ids == ["S1"])
        c.close()

    def test_reloads_under_a_stream_lose_nothing(self):
        # A sender streams while the configuration is swapped back and forth: every ACKed
        # message is processed once by one of the configurations, none is left unprocessed.
        ids = ["U%03d" % i for i in range(150)]
        acked, errors = [], []

        def stream():
            c = MllpClient(self.server.mllp_port)
            try:
                for cid in ids:
                    if msa(c.send(adt(cid, "O")))[1] == "AA":
                        acked.append(cid)
                    time.sleep(0.005)
            except OSError as e:
                errors.append(e)
            finally:
                c.close()

        sender = threading.Thread(target=stream)
        sender.start()
        for n in range(4):
            self.write(filter="type = ADT", to="downstream, files" if n % 2 == 0 else "downstream")
            status, body = self.reload()
            self.assertEqual(status, 200, body)
            time.sleep(0.05)
        sender.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(acked, ids)
        wait_for(self.peer.ids, lambda got: set(got) == set(ids), timeout=30)
        self.assertEqual(sorted(self.peer.ids()), sorted(ids))  # each once
        self.assertEqual(self.server.get("/api/messages?state=received")[1]["total"], 0)
        self.assertEqual(self.server.get("/api/messages?state=error")[1]["total"], 0)
        # The reloads happened during the stream: some messages were routed to the files too.
        files = wait_for(self.file_count, lambda n: n > 0)
        self.assertLess(files, len(ids))

    def test_sighup_reloads(self):
        self.write(filter="type = ADT and trigger != A04", to="downstream")
        self.server.proc.send_signal(signal.SIGHUP)
        wait_for(self.server.read_log, lambda log: "configuration reloaded" in log)
        c = MllpClient(self.server.mllp_port)
        self.assertEqual(msa(c.send(adt("H1", "O", trigger="A04")))[1], "AA")
        self.assertEqual(msa(c.send(adt("H2", "O")))[1], "AA")
        c.close()
        wait_for(self.peer.ids, lambda ids: ids == ["H2"])
        m = self.server.get("/api/messages?control_id=H1")[1]["messages"][0]
        wait_for(lambda: self.server.get("/api/messages/%d" % m["id"])[1],
                 lambda d: d["state"] == "filtered")


if __name__ == "__main__":
    unittest.main(verbosity=2)
