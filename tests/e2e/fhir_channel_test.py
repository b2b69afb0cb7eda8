"""End-to-end: a channel with `transformer: fhir` converts each HL7 v2 message to a FHIR R4
Bundle on its way through `isthmus serve`, and its file destination receives the Bundles; a
message no map covers ends in state `error` with the reason and is never delivered.
"""
import json
import os
import subprocess
import tempfile
import unittest

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
    destinations: [bundles]
destinations:
  - name: bundles
    type: file
    directory: {files}
    filename: "${{control_id}}-${{message_id}}.json"
"""


def adt(control_id):
    # MSH-7 and PID-7 carry no offset: the channel's timezone (Europe/Paris, +01:00 in January)
    # applies to the timestamp; a date stays a date.
    return ("MSH|^~\\&|REG|HOSP|ISTHMUS|HOSP|20240115103000||ADT^A01^ADT_A01|%s|P|2.5.1\r"
            "EVN|A01|20240115103000\r"
            "PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r"
            "PV1|1|I|W1^101^A\r" % control_id)


class FhirChannelTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.files = os.path.join(self.tmp.name, "files")
        self.config = os.path.join(self.tmp.name, "isthmus.yaml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(data=os.path.join(self.tmp.name, "data"), files=self.files))
        self.server = Server(self.tmp.name, extra=["--config", self.config])

    def tearDown(self):
        self.server.stop()
        self.tmp.cleanup()

    def state_of(self, control_id):
        m = wait_for(lambda: self.server.get("/api/messages?control_id=" + control_id)[1],
                     lambda r: r["total"] == 1)["messages"][0]
        return wait_for(lambda: self.server.get("/api/messages/%d" % m["id"])[1],
                        lambda d: d["state"] not in ("received", "queued"))

    def test_messages_become_bundles_and_unmapped_types_are_errors(self):
        c = MllpClient(self.server.mllp_port)
        self.assertEqual(msa(c.send(adt("F1")))[1], "AA")
        unknown = adt("F2").replace("ADT^A01^ADT_A01", "ZZZ^Z99")
        self.assertEqual(msa(c.send(unknown))[1], "AA")  # after-persist: durable, then ACKed
        c.close()

        listing = lambda: sorted(n for n in os.listdir(self.files) if not n.startswith(".")) \
            if os.path.isdir(self.files) else []
        names = wait_for(listing, lambda names: len(names) >= 1)
        self.assertEqual(len(names), 1, names)
        self.assertRegex(names[0], r"^F1-\d+\.json$")
        path = os.path.join(self.files, names[0])
        with open(path) as f:
            bundle = json.load(f)
        self.assertEqual(bundle["resourceType"], "Bundle")
        self.assertEqual(bundle["type"], "transaction")
        by_type = {}
        for e in bundle["entry"]:
            by_type.setdefault(e["resource"]["resourceType"], []).append(e)
            # Deterministic ids and PUT: converting the same message again changes nothing.
            self.assertEqual(e["request"]["method"], "PUT")
            self.assertEqual(e["request"]["url"],
                             "%s/%s" % (e["resource"]["resourceType"], e["resource"]["id"]))
        for t in ("MessageHeader", "Patient", "Encounter"):
            self.assertIn(t, by_type)
        patient = by_type["Patient"][0]["resource"]
        self.assertEqual(patient["gender"], "female")        # PID-8 F, table 0001
        self.assertEqual(patient["birthDate"], "1980-01-01")  # PID-7, day precision
        self.assertEqual(patient["name"][0]["family"], "DOE")
        self.assertIn("12345", [i.get("value") for i in patient["identifier"]])
        encounter = by_type["Encounter"][0]["resource"]
        self.assertEqual(encounter["class"]["code"], "IMP")  # PV1-2 I, table 0004 -> ActCode
        self.assertEqual(encounter["subject"]["reference"], "Patient/" + patient["id"])

        done = self.state_of("F1")
        self.assertEqual(done["state"], "delivered:bundles")
        failed = self.state_of("F2")
        self.assertEqual(failed["state"], "error")
        self.assertIn("ZZZ", failed["events"][-1]["reason"])
        self.assertEqual(listing(), names)  # nothing delivered for F2

        node = node_binary()
        validator = os.path.join(ROOT, "tests", "tools", "fhir_schema_validate.mjs")
        if node and os.path.isdir(os.path.join(ROOT, "node_modules", "ajv")):
            r = subprocess.run([node, validator, path], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
