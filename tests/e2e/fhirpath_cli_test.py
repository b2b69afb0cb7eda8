"""End-to-end tests of `isthmus fhirpath`: the real binary on real JSON files.

Run by ctest with ISTHMUS_BIN set; `python3 tests/e2e/fhirpath_cli_test.py` works too with
ISTHMUS_BIN. The corpus case (the FHIRPath suite's observation example) is skipped with a message
when ISTHMUS_CORPUS_DIR (../shared/corpus) is absent.
"""
import json
import os
import subprocess
import tempfile
import unittest

BIN = os.environ.get("ISTHMUS_BIN", "build/isthmus")
CORPUS = os.environ.get("ISTHMUS_CORPUS_DIR", os.path.join("..", "shared", "corpus"))

PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "active": True,
    "gender": "female",
    "birthDate": "1980-01-01",
    "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                  "valueDateTime": "1980-01-01T06:30:00+01:00"}]},
    "name": [{"use": "official", "family": "Doe", "given": ["Jane", "Q"]}],
    "identifier": [{"system": "urn:mrn", "value": "12345"}],
    "multipleBirthInteger": 2,
}

BUNDLE = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [
        {"fullUrl": "http://x/Patient/p1", "resource": PATIENT},
        {"fullUrl": "http://x/Observation/o1", "resource": {
            "resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
            "subject": {"reference": "Patient/p1"},
            "valueQuantity": {"value": 13.50, "unit": "g/dL", "system": "http://unitsofmeasure.org",
                              "code": "g/dL"}}},
    ],
}


def run(*args, stdin=None):
    return subprocess.run([BIN, "fhirpath", *args], input=stdin, capture_output=True, timeout=60)


class FhirpathCliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.patient = self.write("patient.json", PATIENT)
        self.bundle = self.write("bundle.json", BUNDLE)

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, obj):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(obj if isinstance(obj, str) else json.dumps(obj))
        return path

    def items(self, *args, stdin=None):
        r = run(*args, stdin=stdin)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return json.loads(r.stdout)

    def test_help_teaches_with_examples(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        out = r.stdout.decode()
        for needle in ("--input", "Examples:", "Exit status", "docs/fhirpath.md", "--var"):
            self.assertIn(needle, out)

    def test_typed_items(self):
        self.assertEqual(self.items("--input", self.patient, "Patient.name.given"),
                         [{"type": "string", "value": "Jane"}, {"type": "string", "value": "Q"}])
        self.assertEqual(self.items("--input", self.patient, "gender"),
                         [{"type": "code", "value": "female"}])
        self.assertEqual(self.items("--input", self.patient, "birthDate"),
                         [{"type": "date", "value": "1980-01-01"}])
        self.assertEqual(self.items("--input", self.patient, "multipleBirth"),
                         [{"type": "integer", "value": 2}])
        self.assertEqual(self.items("--input", self.patient, "name.family.length() + 0.5"),
                         [{"type": "decimal", "value": 3.5}])
        self.assertEqual(self.items("--input", self.patient, "@2024-01-31 + 1 month"),
                         [{"type": "date", "value": "2024-02-29"}])
        self.assertEqual(self.items("--input", self.patient, "@T14:30"),
                         [{"type": "time", "value": "T14:30"}])
        self.assertEqual(self.items("--input", self.patient, "5.40 'mg'"),
                         [{"type": "Quantity", "value": "5.40 'mg'"}])
        self.assertEqual(self.items("--input", self.patient, "identifier"),
                         [{"type": "Identifier", "value": {"system": "urn:mrn", "value": "12345"}}])
        self.assertEqual(self.items("--input", self.patient, "name.where(use = 'nickname')"), [])

    def test_primitive_extensions_and_variables(self):
        self.assertEqual(
            self.items("--input", self.patient,
                       "birthDate.extension(%`ext-patient-birthTime`).value"),
            [{"type": "dateTime", "value": "1980-01-01T06:30:00+01:00"}])
        self.assertEqual(
            self.items("--var", "mrn=12345", "--input", self.patient,
                       "identifier.where(value = %mrn).exists()"),
            [{"type": "boolean", "value": True}])

    def test_primitive_elements_to_string_and_as(self):
        # A primitive's extension element by path (gender has none: empty, exit 0); toString()
        # of partial dates to their precision (N1); `as` on several items is an evaluation
        # error (N1, the R4 suite's testFHIRPathAsFunction21), ofType() filters.
        self.assertEqual(self.items("--input", self.patient, "birthDate.extension.url"),
                         [{"type": "uri",
                           "value": "http://hl7.org/fhir/StructureDefinition/patient-birthTime"}])
        self.assertEqual(self.items("--input", self.patient, "gender.extension"), [])
        self.assertEqual(self.items("--input", self.patient,
                                    "@2016-03T.toString() | @2016T.toString()"),
                         [{"type": "string", "value": "2016-03"},
                          {"type": "string", "value": "2016"}])
        r = run("--input", self.patient, "(name | identifier).as(HumanName)")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertEqual(self.items("--input", self.patient,
                                    "(name | identifier).ofType(HumanName).family"),
                         [{"type": "string", "value": "Doe"}])

    def test_bundle_resolve_and_choice_types(self):
        out = self.items("--input", self.bundle,
                         "Bundle.entry.resource.ofType(Observation)"
                         ".where(subject.resolve() is Patient).value.as(Quantity)")
        self.assertEqual(out[0]["type"], "Quantity")
        self.assertEqual(out[0]["value"]["value"], 13.5)
        self.assertEqual(
            self.items("--input", self.bundle,
                       "Bundle.entry.resource.ofType(Observation).value > 12 'g/dL'"),
            [{"type": "boolean", "value": True}])

    def test_stdin(self):
        out = self.items("Patient.id", stdin=json.dumps(PATIENT).encode())
        self.assertEqual(out, [{"type": "id", "value": "p1"}])

    def test_syntax_error_exits_2(self):
        r = run("--input", self.patient, "name.given +")
        self.assertEqual(r.returncode, 2)
        self.assertIn("syntax error", r.stderr.decode())
        r = run("--input", self.patient, "name.nosuchfunction()")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown function", r.stderr.decode())

    def test_evaluation_error_exits_1(self):
        r = run("--input", self.patient, "name.given.substring(1)")  # two items
        self.assertEqual(r.returncode, 1)
        self.assertIn("single item", r.stderr.decode())
        r = run("--input", self.patient, "Patient.name.given1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("unknown element 'given1'", r.stderr.decode())

    def test_bad_input_exits_2(self):
        r = run("--input", os.path.join(self.tmp.name, "missing.json"), "id")
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot read", r.stderr.decode())
        r = run("--input", self.write("bad.json", "{not json"), "id")
        self.assertEqual(r.returncode, 2)
        self.assertIn("invalid JSON", r.stderr.decode())

    def test_corpus_observation(self):
        path = os.path.join(CORPUS, "fhirpath-r4-tests", "input-json", "observation-example.json")
        if not os.path.exists(path):
            self.skipTest(f"shared corpus absent: {path}")
        out = self.items("--input", path, "Observation.value.unit")
        self.assertEqual(out, [{"type": "string", "value": "lbs"}])


if __name__ == "__main__":
    unittest.main()
