"""MLLP over TLS and mutual TLS with the real binary: `isthmus serve --config` with a TLS
listener, a throwaway test CA made with the openssl CLI, and two clients: `isthmus send --tls`
and Python's ssl module.
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import unittest

from serve_test import BIN, Server, adt, msa

VT, FS, CR = b"\x0b", b"\x1c", b"\r"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d):
    """ca.pem; server.pem/server.key for localhost and 127.0.0.1; client.pem/client.key."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=Isthmus Test CA", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=" + ("localhost" if name == "server" else "test-client"), cwd=d)
        extra = ["-extfile", "san.ext"] if name == "server" else []
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2", *extra, cwd=d)


CONFIG = """
server:
  data_dir: {d}/data
  http_address: 127.0.0.1:0
listeners:
  - name: secure
    address: 127.0.0.1:0
    channel: default
    tls:
      cert: {d}/server.pem
      key: {d}/server.key
      ca: {d}/ca.pem
      require_client_cert: true
      min_version: "1.3"
channels:
  - name: default
"""


@unittest.skipUnless(shutil.which("openssl"), "the openssl CLI is needed to make a test CA")
class TlsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        d = self.tmp.name
        make_pki(d)
        self.config = os.path.join(d, "isthmus.yaml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(d=d))
        self.server = Server(d, extra=["--config", self.config])
        self.msg = os.path.join(d, "m.hl7")
        with open(self.msg, "w") as f:
            f.write(adt("TLS1") + adt("TLS2"))

    def tearDown(self):
        self.server.stop(signal.SIGKILL)
        self.tmp.cleanup()

    def send(self, *extra):
        d = self.tmp.name
        return subprocess.run([BIN, "send", "--quiet", "--tls", "--ca", os.path.join(d, "ca.pem"),
                               "--to", "localhost:%d" % self.server.mllp_port, *extra, self.msg],
                              capture_output=True, timeout=60)

    def test_isthmus_send_with_client_certificate_gets_aa(self):
        d = self.tmp.name
        r = self.send("--cert", os.path.join(d, "client.pem"), "--key", os.path.join(d, "client.key"))
        self.assertEqual(r.returncode, 0, r.stderr.decode() + r.stdout.decode())
        self.assertIn("AA 2", r.stdout.decode())
        self.assertEqual(self.server.get("/api/messages?control_id=TLS2")[1]["total"], 1)

    def test_without_client_certificate_is_refused(self):
        r = self.send()
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 1, r.stderr.decode() + out)
        self.assertIn("AA 0", out)
        self.assertIn("no reply 2", out)
        self.assertRegex(out, r"first transport error: TLS: .*certificate required")
        self.assertEqual(self.server.get("/api/messages")[1]["total"], 0)

    def test_python_ssl_client(self):
        d = self.tmp.name
        ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
        ctx.load_cert_chain(os.path.join(d, "client.pem"), os.path.join(d, "client.key"))
        with socket.create_connection(("127.0.0.1", self.server.mllp_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(VT + adt("PY1").encode() + FS + CR)
                buf = b""
                while FS not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
        self.assertEqual(msa(buf.partition(FS)[0].lstrip(VT).decode())[1:3], ["AA", "PY1"])

    def test_tls12_client_is_refused_when_min_version_is_13(self):
        d = self.tmp.name
        ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
        ctx.load_cert_chain(os.path.join(d, "client.pem"), os.path.join(d, "client.key"))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", self.server.mllp_port), timeout=10) as raw:
            with self.assertRaises(ssl.SSLError) as e:
                ctx.wrap_socket(raw, server_hostname="localhost")
        self.assertRegex(str(e.exception), r"(?i)protocol version|unsupported protocol")
        self.assertEqual(self.server.get("/api/messages")[1]["total"], 0)

    def test_plain_mllp_on_the_tls_port_gets_a_reason(self):
        with socket.create_connection(("127.0.0.1", self.server.mllp_port), timeout=10) as s:
            s.sendall(VT + adt("PLAIN").encode() + FS + CR)
            buf = b""
            while FS not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        self.assertIn(b"MSA|AR|", buf)
        self.assertIn(b"TLS", buf)


if __name__ == "__main__":
    unittest.main(verbosity=2)
