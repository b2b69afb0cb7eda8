"""End-to-end: the MLLP listener options of isthmus.yaml reach the running listener.

Each option has unit tests at the listener (src/listeners/mllp); these start the real binary with
a configuration file, so they fail when the configuration is read but not wired: ack_mode none,
after-processing and enhanced, max_frame_bytes, max_connections, allow, idle_timeout, and the server's
dedupe_window.
"""
import os
import signal
import socket
import tempfile
import time
import unittest

from serve_test import MllpClient, Server, adt, msa, wait_for

VT, FS, CR = b"\x0b", b"\x1c", b"\r"

CONFIG = """
server:
  data_dir: {data}
  http_address: 127.0.0.1:0
{server}
listeners:
  - name: main
    address: 127.0.0.1:0
    channel: adt
{options}
channels:
  - name: adt
    transformer:
      type: lua
      script: {script}
    routes:
      - to: [files]
destinations:
  - name: files
    type: file
    directory: {files}
"""

# Fails the transformation of a patient named BOOM (an application error: AE in after-processing).
SCRIPT = """
function transform(msg)
  if msg:get("PID-5.1") == "BOOM" then
    error("cannot transform this one")
  end
end
"""


def closed_by_server(sock, timeout=5.0):
    """True when the server closes the connection within timeout (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class ListenerOptionsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.server = None

    def tearDown(self):
        if self.server:
            self.server.stop(signal.SIGKILL)
        self.tmp.cleanup()

    def start(self, options, server=()):
        script = os.path.join(self.tmp.name, "t.lua")
        with open(script, "w") as f:
            f.write(SCRIPT)
        config = os.path.join(self.tmp.name, "isthmus.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(data=os.path.join(self.tmp.name, "data"), script=script,
                                  files=os.path.join(self.tmp.name, "files"),
                                  options="\n".join("    " + o for o in options),
                                  server="\n".join("  " + o for o in server)))
        self.server = Server(self.tmp.name, extra=["--config", config])
        return self.server

    def state_of(self, control_id):
        m = wait_for(lambda: self.server.get("/api/messages?control_id=" + control_id)[1],
                     lambda b: b["total"] == 1)["messages"][0]
        return wait_for(lambda: self.server.get("/api/messages/%d" % m["id"])[1],
                        lambda d: d["state"] not in ("received", "queued"))["state"]

    def test_ack_mode_none_journals_and_answers_nothing(self):
        self.start(["ack_mode: none"])
        c = MllpClient(self.server.mllp_port, timeout=1)
        c.send_raw(VT + adt("N1").encode() + FS + CR)
        with self.assertRaises(socket.timeout):
            c.reply()
        c.sock.settimeout(10)
        self.assertEqual(self.state_of("N1"), "delivered:files")
        c.close()

    def test_after_processing_ack_reflects_the_transformation(self):
        self.start(["ack_mode: after-processing"])
        c = MllpClient(self.server.mllp_port)
        self.assertEqual(msa(c.send(adt("P1")))[1:3], ["AA", "P1"])
        ae = c.send(adt("P2").replace("DOE^JANE", "BOOM^X"))
        self.assertEqual(msa(ae)[1:3], ["AE", "P2"])
        self.assertIn("cannot transform this one", ae)
        self.assertIn("\rERR|", ae)
        c.close()
        self.assertEqual(self.state_of("P2"), "error")

    def test_enhanced_mode_commit_then_application_ack(self):
        self.start(["ack_mode: enhanced"])
        c = MllpClient(self.server.mllp_port)
        self.assertEqual(msa(c.send(adt("E1")))[1:3], ["CA", "E1"])
        self.assertEqual(msa(c.reply())[1:3], ["AA", "E1"])
        self.assertEqual(msa(c.send(adt("E2").replace("DOE^JANE", "BOOM^X")))[1:3], ["CA", "E2"])
        ae = c.reply()
        self.assertEqual(msa(ae)[1:3], ["AE", "E2"])
        self.assertIn("cannot transform this one", ae)
        # MSH-16 = ER (application ACK on error only) and a success: the commit ACK alone.
        er = adt("E3").replace("|P|2.5.1\r", "|P|2.5.1|||AL|ER\r", 1)
        self.assertEqual(msa(c.send(er))[1:3], ["CA", "E3"])
        self.assertEqual(msa(c.send(adt("E4")))[1:3], ["CA", "E4"])  # the next reply is E4's
        self.assertEqual(msa(c.reply())[1:3], ["AA", "E4"])
        # A message that does not parse is refused at the commit level too: CR, not AR (an
        # enhanced-mode sender expects CA/CE/CR first), with its ERR; no application ACK follows.
        cr = c.send("MSH|^~\\&|A|B|C|D|x||ADT^A01|E5|P|2.5.1\rnot a segment\r")
        self.assertEqual(msa(cr)[1:3], ["CR", "E5"])
        self.assertIn("\rERR|||100^Segment sequence error^HL70357|E|", cr)
        self.assertEqual(msa(c.send(adt("E6")))[1:3], ["CA", "E6"])  # the next reply is E6's
        c.close()

    def test_max_frame_bytes_naks_a_larger_frame(self):
        self.start(["max_frame_bytes: 1KiB"])
        c = MllpClient(self.server.mllp_port)
        nak = c.send(adt("F1") + "NTE|1||" + "x" * 2000 + "\r")
        self.assertEqual(msa(nak)[1], "AR")
        self.assertIn("exceeds the limit of 1024 bytes", nak)
        self.assertEqual(msa(c.send(adt("F2")))[1:3], ["AA", "F2"])
        c.close()
        self.assertEqual(self.server.get("/api/messages?control_id=F1")[1]["total"], 0)

    def test_max_connections_closes_the_one_over_the_limit(self):
        self.start(["max_connections: 2"])
        first, second = MllpClient(self.server.mllp_port), MllpClient(self.server.mllp_port)
        self.assertEqual(msa(first.send(adt("C1")))[1], "AA")
        self.assertEqual(msa(second.send(adt("C2")))[1], "AA")
        third = socket.create_connection(("127.0.0.1", self.server.mllp_port))
        self.assertTrue(closed_by_server(third))
        third.close()
        # A freed slot is taken again.
        first.close()
        def fourth_gets_aa():
            c = MllpClient(self.server.mllp_port, timeout=2)
            try:
                return msa(c.send(adt("C4")) or "")[1:2] == ["AA"]
            except OSError:
                return False
            finally:
                c.close()
        wait_for(fourth_gets_aa, lambda ok: ok)
        second.close()

    def test_allow_list_closes_addresses_not_listed(self):
        self.start(["allow: [192.0.2.0/24]"])  # TEST-NET-1: not the loopback this test uses
        s = socket.create_connection(("127.0.0.1", self.server.mllp_port))
        s.sendall(VT + adt("A1").encode() + FS + CR)
        self.assertTrue(closed_by_server(s))
        s.close()
        self.assertEqual(self.server.get("/api/messages?control_id=A1")[1]["total"], 0)

    def test_allow_list_admits_loopback_when_listed(self):
        self.start(["allow: [127.0.0.0/8]"])
        c = MllpClient(self.server.mllp_port)
        self.assertEqual(msa(c.send(adt("A2")))[1], "AA")
        c.close()

    def test_idle_timeout_closes_a_silent_connection(self):
        self.start(["idle_timeout: 300ms"])
        c = MllpClient(self.server.mllp_port)
        self.assertEqual(msa(c.send(adt("I1")))[1], "AA")
        started = time.time()
        self.assertTrue(closed_by_server(c.sock, timeout=10))
        self.assertLess(time.time() - started, 9)
        c.close()

    def total(self, control_id):
        return self.server.get("/api/messages?control_id=" + control_id)[1]["total"]

    def test_dedupe_window_bounds_duplicate_detection(self):
        self.start([], server=["dedupe_window: 1s"])
        c = MllpClient(self.server.mllp_port)
        self.assertEqual(msa(c.send(adt("W1")))[1:3], ["AA", "W1"])
        self.assertEqual(msa(c.send(adt("W1")))[1:3], ["AA", "W1"])  # within 1 s: a duplicate
        self.assertEqual(self.total("W1"), 1)
        time.sleep(1.3)
        self.assertEqual(msa(c.send(adt("W1")))[1:3], ["AA", "W1"])  # after it: a new message
        self.assertEqual(self.total("W1"), 2)
        c.close()

    def test_dedupe_window_zero_turns_detection_off(self):
        self.start([], server=["dedupe_window: 0s"])
        c = MllpClient(self.server.mllp_port)
        for _ in range(2):
            self.assertEqual(msa(c.send(adt("Z1")))[1], "AA")
        c.close()
        self.assertEqual(self.total("Z1"), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
