"""End-to-end tests of the FHIR R4 REST API at /fhir: the real binary and a real client
(npm fhir-kit-client, tests/e2e/peers/fhir_kit_client.mjs) for CRUD, If-Match conflicts,
delete/410, history paging, transactions with urn:uuid references and OperationOutcome errors;
raw HTTP for headers; and MLLP -> `transformer: fhir` -> `fhir_local` -> GET through /fhir.
"""
import json
import os
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request

from serve_test import ROOT, MllpClient, Server, msa, wait_for, node_binary

CONFIG = """
server:
  data_dir: {data}
  http_address: 127.0.0.1:0
listeners:
  - name: main
    address: 127.0.0.1:0
    channel: to-fhir
channels:
  - name: to-fhir
    transformer:
      type: fhir
      timezone: Europe/Paris
    destinations: [store]
destinations:
  - name: store
    type: fhir_local
"""


def http(port, method, path, body=None, headers=None):
    all_headers = {"Content-Type": "application/fhir+json"} if body is not None else {}
    all_headers.update(headers or {})
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=body.encode() if body is not None else None,
                                 headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


class FhirRestTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.config = os.path.join(self.tmp.name, "isthmus.yaml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(data=os.path.join(self.tmp.name, "data")))
        self.server = Server(self.tmp.name, extra=["--config", self.config])

    def tearDown(self):
        self.server.stop()
        self.tmp.cleanup()

    def test_fhir_kit_client(self):
        node = node_binary()
        if not node or not os.path.isdir(os.path.join(ROOT, "node_modules", "fhir-kit-client")):
            self.skipTest("node or fhir-kit-client missing: run scripts/bootstrap")
        out = subprocess.run(
            [node, os.path.join(ROOT, "tests", "e2e", "peers", "fhir_kit_client.mjs"),
             "http://127.0.0.1:%d/fhir" % self.server.http_port],
            capture_output=True, text=True, timeout=120, cwd=ROOT)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("done", out.stdout)

    def test_headers_and_errors(self):
        port = self.server.http_port
        status, headers, body = http(port, "POST", "/fhir/Patient", '{"resourceType":"Patient"}',
                                     {"Content-Type": "application/fhir+json"})
        self.assertEqual(status, 201)
        self.assertTrue(headers["Content-Type"].startswith("application/fhir+json"))
        self.assertEqual(headers["ETag"], 'W/"1"')
        pid = json.loads(body)["id"]
        self.assertTrue(headers["Location"].endswith("/fhir/Patient/%s/_history/1" % pid))
        self.assertIn("GMT", headers["Last-Modified"])
        status, headers, body = http(port, "PUT", "/fhir/Patient/" + pid,
                                     json.dumps({"resourceType": "Patient", "id": pid}),
                                     {"Prefer": "return=minimal", "If-Match": 'W/"1"'})
        self.assertEqual((status, body, headers["ETag"]), (200, "", 'W/"2"'))
        status, headers, body = http(port, "POST", "/fhir/Patient/" + pid, "{}")
        self.assertEqual(status, 405)
        self.assertIn("GET", headers["Allow"])
        self.assertEqual(json.loads(body)["resourceType"], "OperationOutcome")
        status, _, body = http(port, "PATCH", "/fhir/Patient/" + pid, "[]")
        self.assertEqual(status, 501)
        status, _, body = http(port, "POST", "/fhir/Patient", "<Patient/>",
                               {"Content-Type": "application/fhir+xml"})
        self.assertEqual(status, 415)
        status, _, body = http(port, "GET", "/fhir/Patient/" + pid + "?_pretty=true")
        self.assertIn('\n  "resourceType": "Patient"', body)
        status, _, body = http(port, "PUT", "/fhir/Patient/" + pid,
                               json.dumps({"resourceType": "Patient", "id": "other"}))
        self.assertEqual(status, 400)

    def test_mllp_to_fhir_local_to_rest(self):
        c = MllpClient(self.server.mllp_port)
        ack = c.send("MSH|^~\\&|REG|HOSP|ISTHMUS|HOSP|20240115103000||ADT^A01^ADT_A01|FL1|P|2.5.1\r"
                     "EVN|A01|20240115103000\r"
                     "PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r"
                     "PV1|1|I|W1^101^A\r")
        c.close()
        self.assertEqual(msa(ack)[1], "AA")
        port = self.server.http_port

        def patients():
            status, _, body = http(port, "GET", "/fhir/Patient")
            return json.loads(body) if status == 200 else {"entry": []}

        found = wait_for(patients, lambda b: len(b.get("entry", [])) >= 1)
        patient = found["entry"][0]["resource"]
        self.assertEqual(patient["name"][0]["family"], "DOE")
        self.assertEqual(patient["birthDate"], "1980-01-01")
        status, _, body = http(port, "GET", "/fhir/Patient/" + patient["id"])
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["meta"]["versionId"], "1")
        # Delivered exactly once: the message's events show one delivery, the queue is empty.
        m = self.server.get("/api/messages?control_id=FL1")[1]["messages"][0]
        detail = wait_for(lambda: self.server.get("/api/messages/%d" % m["id"])[1],
                          lambda d: any(e["state"] == "delivered:store" for e in d["events"]))
        self.assertEqual(sum(e["state"] == "delivered:store" for e in detail["events"]), 1)
        dests = self.server.get("/api/destinations")[1]
        store = [d for d in dests["destinations"] if d["name"] == "store"][0]
        self.assertEqual((store["delivered"], store["queued"], store["dead"]), (1, 0, 0))


if __name__ == "__main__":
    unittest.main()
