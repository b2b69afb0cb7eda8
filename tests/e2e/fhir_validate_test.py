"""End-to-end: $validate on the real binary checks what needs FHIRPath (the R4 invariants and
profiles, docs/fhir-validation.md "Invariants and profiles"), and writes check reference targets
but not invariants (they run in $validate only: docs/fhir-validation.md gives the measurements).
Expectations come from the R4 definitions: observation.html (obs-6, Observation.subject is
Reference(Patient | Group | Device | Location)), datatypes.html (rng-2: Range low <= high), and
the body weight profile (observation-vitalsigns.html: a LOINC 29463-7 coding is required)."""
import json
import os
import tempfile
import unittest

from fhir_rest_test import CONFIG, http
from serve_test import Server

BODYWEIGHT = "http://hl7.org/fhir/StructureDefinition/bodyweight"


def observation(**members):
    o = {"resourceType": "Observation", "status": "final",
         "category": [{"coding": [{
             "system": "http://terminology.hl7.org/CodeSystem/observation-category",
             "code": "vital-signs"}]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
         "subject": {"reference": "Patient/p1"},
         "effectiveDateTime": "2016-03-28",
         "valueQuantity": {"value": 67.5, "unit": "kg", "system": "http://unitsofmeasure.org",
                           "code": "kg"}}
    o.update(members)
    return o


class FhirValidateTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        config = os.path.join(self.tmp.name, "isthmus.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(data=os.path.join(self.tmp.name, "data")))
        self.server = Server(self.tmp.name, extra=["--config", config])
        self.port = self.server.http_port

    def tearDown(self):
        self.server.stop()
        self.tmp.cleanup()

    def errors(self, method, path, body=None):
        status, _, outcome = http(self.port, method, path,
                                  json.dumps(body) if body is not None else None)
        self.assertEqual(status, 200, outcome)
        return [(i["code"], i.get("expression", [""])[0], i["diagnostics"])
                for i in json.loads(outcome)["issue"] if i["severity"] == "error"]

    def test_reference_targets_on_write(self):
        status, _, outcome = http(self.port, "PUT", "/fhir/Observation/o1", json.dumps(
            observation(id="o1", subject={"reference": "Practitioner/1"})))
        self.assertEqual(status, 400, outcome)
        self.assertIn("Observation.subject.reference", outcome)
        status, _, _ = http(self.port, "PUT", "/fhir/Observation/o1", json.dumps(
            observation(id="o1", subject={"reference": "Group/1"})))
        self.assertEqual(status, 201)

    def test_absolute_reference_targets_in_validate(self):
        # An absolute URL ending in Type/id names its type as Type/id does: Organization is not
        # among Observation.subject's targets. Writes check relative references only, so the
        # store takes it (201) and $validate of the stored version reports it.
        bad = observation(id="o4", subject={"reference": "http://example.org/fhir/Organization/1"})
        status, _, _ = http(self.port, "PUT", "/fhir/Observation/o4", json.dumps(bad))
        self.assertEqual(status, 201)
        self.assertEqual([e[:2] for e in self.errors("GET", "/fhir/Observation/o4/$validate")],
                         [("structure", "Observation.subject.reference")])
        good = observation(subject={"reference": "http://example.org/fhir/Patient/1/_history/2"})
        self.assertEqual(self.errors("POST", "/fhir/Observation/$validate", good), [])

    def test_profile_required_bindings(self):
        # bodyweight binds valueQuantity.code to ucum-bodyweight (kg, [lb_av], g), required.
        ounces = observation()
        ounces["valueQuantity"].update(unit="oz", code="[oz_av]")
        self.assertEqual(self.errors("POST", "/fhir/Observation/$validate", ounces), [])
        self.assertEqual(
            [e[:2] for e in self.errors("POST", "/fhir/Observation/$validate?profile=" +
                                        BODYWEIGHT, ounces)],
            [("code-invalid", "Observation.value[x]:valueQuantity.code")])

    def test_invariants_in_validate_not_on_write(self):
        bad = observation(id="o2", dataAbsentReason={"text": "x"})  # obs-6
        status, _, _ = http(self.port, "PUT", "/fhir/Observation/o2", json.dumps(bad))
        self.assertEqual(status, 201)
        self.assertEqual([e[:2] for e in self.errors("GET", "/fhir/Observation/o2/$validate")],
                         [("invariant", "Observation")])
        # Numbers read back from the store: Range 11 .. 10 breaks rng-2 (9 .. 10 does not).
        ranged = observation(id="o3", valueRange={"low": {"value": 11}, "high": {"value": 10}})
        del ranged["valueQuantity"]
        status, _, _ = http(self.port, "PUT", "/fhir/Observation/o3", json.dumps(ranged))
        self.assertEqual(status, 201)
        self.assertEqual(self.errors("GET", "/fhir/Observation/o3/$validate"),
                         [("invariant", "Observation.valueRange",
                           "rng-2: If present, low SHALL have a lower value than high")])
        ranged["valueRange"]["low"]["value"] = 9
        self.assertEqual(self.errors("POST", "/fhir/Observation/$validate", ranged), [])

    def test_profiles(self):
        other = observation()
        other["code"]["coding"][0]["code"] = "3141-9"
        self.assertEqual(self.errors("POST", "/fhir/Observation/$validate", other), [])
        errors = self.errors("POST", "/fhir/Observation/$validate?profile=" + BODYWEIGHT, other)
        self.assertEqual([e[:2] for e in errors],
                         [("structure", "Observation.code.coding:BodyWeightCode")])
        self.assertEqual(
            self.errors("POST", "/fhir/Observation/$validate?profile=" + BODYWEIGHT,
                        observation()), [])
        other["meta"] = {"profile": [BODYWEIGHT]}
        self.assertEqual(len(self.errors("POST", "/fhir/Observation/$validate", other)), 1)
        unknown = self.errors("POST", "/fhir/Observation/$validate?profile=http://example.org/x",
                              observation())
        self.assertEqual(len(unknown), 1)
        self.assertIn("unknown profile http://example.org/x", unknown[0][2])


if __name__ == "__main__":
    unittest.main()
