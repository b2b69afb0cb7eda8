"""End-to-end tests of FHIR search at /fhir: the real binary with a real client (npm
fhir-kit-client, tests/e2e/peers/fhir_kit_search.mjs) searching by every parameter type and
paging to the end; and the converter's output for the HL7 v2 corpus (`isthmus convert --ndjson`
of ../shared/corpus/fhir-converter-hl7v2/hl7v2/*.hl7) POSTed as transaction Bundles, then
queried (Patient by identifier, name and birthdate; Observation by code, subject and date);
and by raw HTTP: composite parameters, identifier :of-type, _include:iterate, and paging forward
and back through next/previous/first/last links while resources are written.
"""
import datetime
import json
import os
import re
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from fhir_rest_test import ROOT, http, node_binary
from serve_test import BIN, Server

CORPUS = os.environ.get("ISTHMUS_CORPUS_DIR", os.path.join(ROOT, "..", "shared", "corpus"))
HL7_DIR = os.path.join(CORPUS, "fhir-converter-hl7v2", "hl7v2")


def get(port, path, params):
    status, _, body = http(port, "GET", path + "?" + urllib.parse.urlencode(params, doseq=True))
    if status != 200:
        raise AssertionError("%s %s: %d %s" % (path, params, status, body[:300]))
    return json.loads(body)


def match_ids(bundle):
    return {(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle.get("entry", [])
            if e.get("search", {}).get("mode") == "match"}


def known_converter_errors():
    """The element paths of src/fhir/validator_corpus_known.txt's "pairs" lines."""
    known = set()
    with open(os.path.join(ROOT, "src", "fhir", "validator_corpus_known.txt")) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "pairs":
                known.add(parts[2])
    return known


def invalid_elements(outcome):
    """The elements an OperationOutcome's "not a valid FHIR R4 resource" diagnostics name,
    indices removed ("MessageHeader.destination[0].endpoint" -> "MessageHeader.destination.endpoint")."""
    text = json.loads(outcome)["issue"][0]["diagnostics"]
    text = text.split("not a valid FHIR R4 resource: ", 1)[1].split("; and ")[0]
    return {re.sub(r"\[\d+\]", "", item.split(": ", 1)[0]) for item in text.split("; ")}


class FhirSearchTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.server = Server(self.tmp.name)

    def tearDown(self):
        self.server.stop()
        self.tmp.cleanup()

    def test_fhir_kit_client_search(self):
        node = node_binary()
        if not node or not os.path.isdir(os.path.join(ROOT, "node_modules", "fhir-kit-client")):
            self.skipTest("node or fhir-kit-client missing: run scripts/bootstrap")
        out = subprocess.run(
            [node, os.path.join(ROOT, "tests", "e2e", "peers", "fhir_kit_search.mjs"),
             "http://127.0.0.1:%d/fhir" % self.server.http_port],
            capture_output=True, text=True, timeout=300, cwd=ROOT)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("done", out.stdout)

    def test_composite_of_type_iterate_and_previous_links(self):
        port = self.server.http_port
        v2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
        loinc = "http://loinc.org"
        ucum = "http://unitsofmeasure.org"
        resources = [
            {"resourceType": "Organization", "id": "e-parent"},
            {"resourceType": "Organization", "id": "e-org", "partOf": {"reference": "Organization/e-parent"}},
            {"resourceType": "Patient", "id": "e-p1", "managingOrganization": {"reference": "Organization/e-org"},
             "identifier": [{"type": {"coding": [{"system": v2, "code": "MR"}]}, "system": "urn:h", "value": "111"},
                            {"type": {"coding": [{"system": v2, "code": "SS"}]}, "value": "222"}]},
            {"resourceType": "Patient", "id": "e-p2",
             "identifier": [{"type": {"coding": [{"system": v2, "code": "MR"}]}, "value": "222"}]},
            {"resourceType": "Observation", "id": "e-bp", "status": "final", "subject": {"reference": "Patient/e-p1"},
             "code": {"coding": [{"system": loinc, "code": "85354-9"}]},
             "component": [
                 {"code": {"coding": [{"system": loinc, "code": "8480-6"}]},
                  "valueQuantity": {"value": 150, "system": ucum, "code": "mm[Hg]"}},
                 {"code": {"coding": [{"system": loinc, "code": "8462-4"}]},
                  "valueQuantity": {"value": 95, "system": ucum, "code": "mm[Hg]"}}]},
            {"resourceType": "Observation", "id": "e-bp2", "status": "final", "subject": {"reference": "Patient/e-p2"},
             "code": {"coding": [{"system": loinc, "code": "85354-9"}]},
             "component": [
                 {"code": {"coding": [{"system": loinc, "code": "8480-6"}]},
                  "valueQuantity": {"value": 95, "system": ucum, "code": "mm[Hg]"}},
                 {"code": {"coding": [{"system": loinc, "code": "8462-4"}]},
                  "valueQuantity": {"value": 150, "system": ucum, "code": "mm[Hg]"}}]},
        ]
        for r in resources:
            status, _, body = http(port, "PUT", "/fhir/%s/%s" % (r["resourceType"], r["id"]), json.dumps(r))
            self.assertIn(status, (200, 201), body)

        # Composite: systolic > 140 is e-bp only; e-bp2 has 150 too, but on its diastolic.
        b = get(port, "/fhir/Observation",
                {"component-code-value-quantity": "%s|8480-6$gt140|%s|mm[Hg]" % (loinc, ucum)})
        self.assertEqual(match_ids(b), {("Observation", "e-bp")})
        b = get(port, "/fhir/Observation", {"component-code-value-quantity": "8462-4$gt140"})
        self.assertEqual(match_ids(b), {("Observation", "e-bp2")})
        b = get(port, "/fhir/Observation", {"component-code-value-quantity": "8462-4$gt140,8480-6$gt140"})
        self.assertEqual(match_ids(b), {("Observation", "e-bp"), ("Observation", "e-bp2")})
        status, _, body = http(port, "GET", "/fhir/Observation?component-code-value-quantity=8480-6")
        self.assertEqual(status, 400, body)
        self.assertEqual(json.loads(body)["resourceType"], "OperationOutcome")
        # The CapabilityStatement lists the composites as such.
        status, _, body = http(port, "GET", "/fhir/metadata")
        obs = next(r for r in json.loads(body)["rest"][0]["resource"] if r["type"] == "Observation")
        params = {p["name"]: p["type"] for p in obs["searchParam"]}
        for name in ("code-value-quantity", "component-code-value-quantity", "combo-code-value-concept",
                     "code-value-date", "code-value-string"):
            self.assertEqual(params.get(name), "composite", name)

        # :of-type: MR 222 is e-p2 (e-p1's 222 is its SS identifier).
        b = get(port, "/fhir/Patient", {"identifier:of-type": v2 + "|MR|222"})
        self.assertEqual(match_ids(b), {("Patient", "e-p2")})
        b = get(port, "/fhir/Patient", {"identifier:of-type": v2 + "|SS|222"})
        self.assertEqual(match_ids(b), {("Patient", "e-p1")})

        # _include:iterate: Observation -> Patient -> Organization -> parent Organization.
        b = get(port, "/fhir/Observation", {"_id": "e-bp", "_include": "Observation:subject",
                                            "_include:iterate": ["Patient:organization", "Organization:partof"]})
        included = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in b["entry"]
                    if e["search"]["mode"] == "include"}
        self.assertEqual(included, {("Patient", "e-p1"), ("Organization", "e-org"),
                                    ("Organization", "e-parent")})

        # Paging forward to the end and back to the start by the links, with writes in between.
        for i in range(12):
            r = {"resourceType": "Patient", "id": "pg-%02d" % i, "birthDate": "19%02d" % (50 + i % 5)}
            http(port, "PUT", "/fhir/Patient/" + r["id"], json.dumps(r))

        def links(bundle):
            return {l["relation"]: l["url"] for l in bundle["link"]}

        def follow(url):
            path = url[url.index("/fhir"):]
            status, _, body = http(port, "GET", path)
            self.assertEqual(status, 200, body)
            return json.loads(body)

        def page_ids(bundle):
            return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]

        first = get(port, "/fhir/Patient", {"_sort": "-birthdate", "_count": 5, "_id:not": "e-p1,e-p2"})
        self.assertNotIn("previous", links(first))
        self.assertIn("first", links(first))
        self.assertIn("last", links(first))
        pages = [page_ids(first)]
        b = first
        while "next" in links(b):
            b = follow(links(b)["next"])
            self.assertIn("previous", links(b))
            pages.append(page_ids(b))
        self.assertEqual([len(p) for p in pages], [5, 5, 2])
        self.assertEqual(sorted(sum(pages, [])), ["pg-%02d" % i for i in range(12)])
        self.assertEqual(page_ids(follow(links(first)["last"])), sum(pages, [])[-5:])
        # Back from the last page; a Patient written meanwhile with the latest birth date sorts
        # first and appears one page further back, nothing else moves.
        http(port, "PUT", "/fhir/Patient/pg-new", json.dumps(
            {"resourceType": "Patient", "id": "pg-new", "birthDate": "2020"}))
        back = []
        while "previous" in links(b):
            b = follow(links(b)["previous"])
            back.insert(0, page_ids(b))
        self.assertEqual(back, [["pg-new"]] + pages[:-1])
        self.assertEqual(page_ids(follow(links(b)["first"])), ["pg-new"] + pages[0][:4])


    def test_corpus_converted_loaded_and_queried(self):
        if not os.path.isdir(HL7_DIR):
            self.skipTest("corpus absent (%s): the converter's output cannot be loaded" % HL7_DIR)
        conv = subprocess.run([BIN, "convert", "--ndjson", HL7_DIR], capture_output=True,
                              text=True, timeout=300)
        bundles = [json.loads(line) for line in conv.stdout.splitlines() if line.strip()]
        self.assertGreater(len(bundles), 50, conv.stderr[-2000:])
        port = self.server.http_port
        started = time.time()
        failed = []
        for i, b in enumerate(bundles):
            status, _, body = http(port, "POST", "/fhir", json.dumps(b))
            if status != 200:
                failed.append((i, status, body[:2000]))
        load_seconds = time.time() - started
        # The store refuses a transaction with two entries for one resource; the converter emits
        # a few such Bundles today (a converter matter, not search's): they are left out, any
        # other failure fails the test.
        duplicates = [f for f in failed if "change the same resource" in f[2]]
        # Writes are checked against the R4 StructureDefinitions: Bundles refused only for the
        # converter's known validation errors (src/fhir/validator_corpus_known.txt, the "pairs"
        # lines) are left out too; an error of any other kind fails the test.
        known = known_converter_errors()
        invalid = [f for f in failed if f not in duplicates and "not a valid FHIR R4 resource" in f[2]
                   and invalid_elements(f[2]) <= known]
        self.assertEqual([f[:2] + (invalid_elements(f[2]) - known,) for f in failed
                          if f not in duplicates and f not in invalid], [])
        self.assertLess(len(duplicates), len(bundles) // 10, duplicates)
        if duplicates:
            print("\ncorpus: %d of %d Bundles refused (two entries for one resource): %s"
                  % (len(duplicates), len(bundles), [f[0] for f in duplicates]))
        if invalid:
            print("\ncorpus: %d of %d Bundles refused for known converter validation errors: %s"
                  % (len(invalid), len(bundles), [f[0] for f in invalid]))
        refused = {f[0] for f in duplicates + invalid}
        # What the Bundles hold, by the last entry written for each resource.
        resources = {}
        for i, b in enumerate(bundles):
            if i in refused:
                continue
            for e in b.get("entry", []):
                r = e.get("resource")
                if r and "id" in r:
                    resources[(r["resourceType"], r["id"])] = r
        patients = [r for (t, _), r in resources.items() if t == "Patient"]
        observations = [r for (t, _), r in resources.items() if t == "Observation"]
        self.assertGreater(len(patients), 10)
        self.assertGreater(len(observations), 10)
        total = get(port, "/fhir/Patient", {"_summary": "count"})["total"]
        self.assertEqual(total, len(patients))

        timings = []

        def query(path, params):
            t = time.time()
            b = get(port, path, dict(params, _count=1000))
            timings.append(time.time() - t)
            return match_ids(b)

        checked = {"identifier": 0, "name": 0, "birthdate": 0}
        for p in patients:
            key = ("Patient", p["id"])
            for ident in p.get("identifier", [])[:1]:
                if "value" in ident:
                    token = (ident.get("system", "") + "|" if "system" in ident else "") + ident["value"]
                    self.assertIn(key, query("/fhir/Patient", {"identifier": token}), token)
                    checked["identifier"] += 1
            family = next((n["family"] for n in p.get("name", []) if "family" in n), None)
            if family:
                self.assertIn(key, query("/fhir/Patient", {"name": family}))
                self.assertIn(key, query("/fhir/Patient", {"family:exact": family}))
                checked["name"] += 1
            if "birthDate" in p:
                found = query("/fhir/Patient", {"birthdate": p["birthDate"]})
                self.assertIn(key, found)
                for other in found:  # every match has that birth date (within its precision)
                    bd = resources[other].get("birthDate", "")
                    self.assertTrue(bd.startswith(p["birthDate"][:4]), (other, bd))
                checked["birthdate"] += 1
        self.assertTrue(all(n > 5 for n in checked.values()), checked)

        checked = {"code": 0, "subject": 0, "date": 0}
        for o in observations:
            key = ("Observation", o["id"])
            for c in o.get("code", {}).get("coding", [])[:1]:
                if "code" in c:
                    token = (c["system"] + "|" if "system" in c else "") + c["code"]
                    self.assertIn(key, query("/fhir/Observation", {"code": token}))
                    checked["code"] += 1
            ref = o.get("subject", {}).get("reference", "")
            if ref.startswith("Patient/"):
                self.assertIn(key, query("/fhir/Observation", {"subject": ref}))
                self.assertIn(key, query("/fhir/Observation",
                                         {"subject:Patient": ref.split("/", 1)[1]}))
                checked["subject"] += 1
            when = o.get("effectiveDateTime")
            if when:
                self.assertIn(key, query("/fhir/Observation", {"date": when}))
                self.assertIn(key, query("/fhir/Observation", {"date": "le" + when}))
                # A search date without offset is a UTC day.
                day = when[:10]
                if len(when) > 10 and when[-6] in "+-" and when[-3] == ":":
                    t = datetime.datetime.fromisoformat(when).astimezone(datetime.timezone.utc)
                    day = t.strftime("%Y-%m-%d")
                self.assertIn(key, query("/fhir/Observation", {"date": day}))
                self.assertNotIn(key, query("/fhir/Observation", {"date": "gt" + day}))
                checked["date"] += 1
        self.assertTrue(all(n > 5 for n in checked.values()), checked)
        timings.sort()
        print("\ncorpus: %d bundles, %d resources loaded in %.1fs; %d searches, median %.1f ms, "
              "p99 %.1f ms" % (len(bundles), len(resources), load_seconds, len(timings),
                               1000 * timings[len(timings) // 2],
                               1000 * timings[int(len(timings) * 0.99)]))


if __name__ == "__main__":
    unittest.main()
