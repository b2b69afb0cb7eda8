"""The `http` destination with the real binary: MLLP in, each message POSTed to a receiver
(Python's own HTTP/1.1 server, with persistent connections) that counts the TCP connections it
accepted. With the default `keep_alive: true` the messages share kept connections; with
`keep_alive: false` each message opens its own. A receiver answering 500 gets the message again
(retried), one answering 400 dead-letters it.
"""
import http.server
import os
import signal
import tempfile
import threading
import unittest

from routing_test import adt
from serve_test import MllpClient, Server, msa, wait_for


class Receiver:
    """An HTTP/1.1 server on 127.0.0.1 that answers `status` and records what it saw."""

    def __init__(self, status=200):
        self.status = status
        self.connections = 0
        self.bodies = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive unless the client says close

            def setup(self):
                super().setup()
                with outer.lock:
                    outer.connections += 1

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.bodies.append((self.headers.get("X-Isthmus-Message-Id"), body))
                    status = outer.status
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def seen(self):
        with self.lock:
            return list(self.bodies), self.connections

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


CONFIG = """
server:
  data_dir: {data}
  http_address: 127.0.0.1:0
listeners:
  - name: main
    address: 127.0.0.1:0
    channel: feed
channels:
  - name: feed
    destinations: [hook]
destinations:
  - name: hook
    type: http
    url: http://127.0.0.1:{port}/hl7
    timeout: 5s
    keep_alive: {keep_alive}
    retry:
      initial_backoff: 100ms
      max_backoff: 200ms
      max_attempts: 3
"""


class HttpDestinationTest(unittest.TestCase):
    def start(self, status=200, keep_alive="true"):
        self.receiver = Receiver(status)
        self.tmp = tempfile.TemporaryDirectory()
        d = self.tmp.name
        config = os.path.join(d, "isthmus.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(data=os.path.join(d, "data"), port=self.receiver.port,
                                  keep_alive=keep_alive))
        self.server = Server(d, extra=["--config", config])

    def tearDown(self):
        self.server.stop(signal.SIGTERM)
        self.receiver.stop()
        self.tmp.cleanup()

    def send(self, ids):
        c = MllpClient(self.server.mllp_port)
        for i in ids:
            self.assertEqual(msa(c.send(adt(i)))[1], "AA")
        c.close()

    def test_messages_share_a_kept_connection(self):
        self.start()
        ids = ["K%d" % i for i in range(12)]
        self.send(ids)
        bodies, connections = wait_for(self.receiver.seen, lambda s: len(s[0]) >= 12)
        self.assertEqual(len(bodies), 12)
        self.assertEqual(sorted(b.split(b"|")[9].decode() for _, b in bodies), sorted(ids))
        # One dispatcher worker delivers in order over one kept connection (a reconnect after a
        # race with the receiver's idle timeout could add one).
        self.assertLessEqual(connections, 2)

    def test_keep_alive_false_opens_a_connection_per_message(self):
        self.start(keep_alive="false")
        self.send(["N1", "N2", "N3"])
        bodies, connections = wait_for(self.receiver.seen, lambda s: len(s[0]) >= 3)
        self.assertEqual(len(bodies), 3)
        self.assertEqual(connections, 3)

    def test_server_error_is_retried_and_client_error_dead_lettered(self):
        self.start(status=500)
        self.send(["R1"])
        # max_attempts 3: the receiver sees the message three times, then it is dead.
        wait_for(self.receiver.seen, lambda s: len(s[0]) >= 3)
        dead = wait_for(lambda: self.server.get("/api/dead-letters")[1]["dead_letters"],
                        lambda d: len(d) >= 1)
        self.assertEqual(len(dead), 1)
        self.assertEqual(dead[0]["attempts"], 3)
        self.assertIn("HTTP 500", dead[0]["reason"])
        self.assertEqual(len(self.receiver.seen()[0]), 3)
        with self.receiver.lock:
            self.receiver.status = 400
        self.send(["R2"])
        dead = wait_for(lambda: self.server.get("/api/dead-letters")[1]["dead_letters"],
                        lambda d: len(d) >= 2)
        reasons = sorted(d["reason"] for d in dead)
        self.assertIn("HTTP 400", reasons[0])
        self.assertEqual([d["attempts"] for d in dead if "HTTP 400" in d["reason"]], [1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
