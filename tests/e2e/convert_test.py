"""End-to-end tests of `isthmus convert`: the real binary, real files, shipped maps.

Run by ctest with ISTHMUS_BIN set; `python3 tests/e2e/convert_test.py` works too with ISTHMUS_BIN.
The corpus cases (Microsoft FHIR-Converter inputs) are skipped with a message when
ISTHMUS_CORPUS_DIR (../shared/corpus) is absent.
"""
import json
import os
import subprocess
import tempfile
import unittest

BIN = os.environ.get("ISTHMUS_BIN", "build/isthmus")
CORPUS = os.environ.get("ISTHMUS_CORPUS_DIR", os.path.join("..", "shared", "corpus"))

ADT = (
    "MSH|^~\\&|REG|HOSP|ISTHMUS|HOSP|20240101120000||ADT^A04^ADT_A01|MSG0001|P|2.5.1\r"
    "EVN|A04|20240101120000\r"
    "PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r"
    "PV1|1|O\r"
)
ORU = (
    "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102080000||ORU^R01^ORU_R01|C1|P|2.5.1\r"
    "PID|1||777^^^HOSP^MR||ROE^RICHARD||19700101|M\r"
    "OBR|1|P1|F1|24317-0^CBC^LN|||20240102073000\r"
    "OBX|1|NM|718-7^Hemoglobin^LN||13.5|g/dL^^UCUM|12-16|N|||F\r"
)


def run(*args, stdin=None):
    return subprocess.run([BIN, "convert", *args], input=stdin, capture_output=True, timeout=120)


class ConvertTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_help_teaches_with_examples(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        out = r.stdout.decode()
        for needle in ("--ndjson", "--explain", "--maps", "--tz", "Examples:", "mapping-guide"):
            self.assertIn(needle, out)

    def test_pretty_bundle_and_idempotent(self):
        path = self.write("adt.hl7", ADT)
        a = run(path)
        self.assertEqual(a.returncode, 0, a.stderr)
        bundle = json.loads(a.stdout)
        self.assertEqual(bundle["type"], "transaction")
        types = [e["resource"]["resourceType"] for e in bundle["entry"]]
        for t in ("MessageHeader", "Provenance", "Patient", "Encounter"):
            self.assertIn(t, types)
        for e in bundle["entry"]:
            r = e["resource"]
            self.assertEqual(e["request"], {"method": "PUT", "url": f'{r["resourceType"]}/{r["id"]}'})
        self.assertEqual(run(path).stdout, a.stdout)

    def test_ndjson_stdin_batch_and_several_messages(self):
        r = run("--ndjson", "--bundle", "batch", "-", stdin=(ADT + ORU).encode())
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(len(lines), 2)
        self.assertTrue(all(json.loads(l)["type"] == "batch" for l in lines))
        oru = json.loads(lines[1])
        report = [e["resource"] for e in oru["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"]
        self.assertEqual(len(report), 1)
        self.assertEqual(len(report[0]["result"]), 1)

    def test_bad_message_is_reported_and_others_still_converted(self):
        unknown = ADT.replace("ADT^A04^ADT_A01", "XYZ^Q99")
        path = self.write("two.hl7", unknown + ORU)
        r = run("--ndjson", path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("message 1: cannot convert: no message map for XYZ^Q99", r.stderr.decode())
        self.assertEqual(len(r.stdout.decode().splitlines()), 1)

    def test_type_override_tz_and_unmapped_segment_warning(self):
        path = self.write("z.hl7", ADT.replace("ADT^A04^ADT_A01", "ADT^A99") + "ZPI|1|x\r")
        r = run("--ndjson", "--type", "ADT_A01", "--tz", "America/Chicago", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning: segment ZPI", r.stderr.decode())
        bundle = json.loads(r.stdout)
        self.assertEqual(bundle["timestamp"], "2024-01-01T12:00:00-06:00")
        self.assertIn("OperationOutcome", [e["resource"]["resourceType"] for e in bundle["entry"]])
        self.assertEqual(run("--tz", "Mars/Olympus", path).returncode, 2)

    def test_site_maps_replace_shipped_ones(self):
        self.write("site/vocabulary/AdministrativeSex.yaml",
                   "table: '0001'\nsystem: http://hl7.org/fhir/administrative-gender\ncodes:\n  F: other\n")
        path = self.write("adt.hl7", ADT)
        r = run("--ndjson", "--maps", os.path.join(self.tmp.name, "site"), path)
        self.assertEqual(r.returncode, 0, r.stderr)
        patient = [e["resource"] for e in json.loads(r.stdout)["entry"]
                   if e["resource"]["resourceType"] == "Patient"][0]
        self.assertEqual(patient["gender"], "other")

    def test_broken_site_map_is_refused_with_location(self):
        self.write("site/segments/PID[Patient].yaml", "segment: PID\nrules:\n  - {field: PID-8, element: gender, type: nope}\n")
        r = run("--maps", os.path.join(self.tmp.name, "site"), self.write("adt.hl7", ADT))
        self.assertEqual(r.returncode, 2)
        self.assertIn("PID[Patient].yaml:3:", r.stderr.decode())

    def test_explain(self):
        r = run("--explain", self.write("adt.hl7", ADT))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertIn("name[0].family = DOE", out)
        self.assertIn("from PID-5.1.1 by", out)
        self.assertIn("PID[Patient].yaml:", out)

    def test_corpus_adt_and_oru_convert(self):
        base = os.path.join(CORPUS, "fhir-converter-hl7v2", "hl7v2")
        if not os.path.isdir(base):
            self.skipTest(f"corpus not found at {base}")
        for name in ("ADT-A01-01.hl7", "ADT-A01-02.hl7", "ORU-R01-01.hl7", "LAB-ORU-1.hl7"):
            r = run("--ndjson", os.path.join(base, name))
            self.assertEqual(r.returncode, 0, (name, r.stderr))
            bundle = json.loads(r.stdout)
            self.assertIn("Patient", [e["resource"]["resourceType"] for e in bundle["entry"]], name)


if __name__ == "__main__":
    unittest.main()
