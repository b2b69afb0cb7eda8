"""End-to-end test of `isthmus convert --maps DIR` with a site's Lua hooks and ConceptMap on top
of the shipped maps (docs/mapping-guide.md "Lua hooks" and "Site ConceptMaps").

The site directory is written here: hooks/site.yaml hooks the shipped PID[Patient] segment map
and ORU_R01 message map without replacing them, lua/site.lua holds the functions,
conceptmaps/local-lab.json maps the lab's local glucose code to LOINC.
Run by ctest with ISTHMUS_BIN set.
"""
import json
import os
import subprocess
import tempfile
import unittest

BIN = os.environ.get("ISTHMUS_BIN", "build/isthmus")

# OBX 1: local code GLU of coding system 99LAB (not in table 0396: the shipped CodingSystem gives
# it the site base http://example.com/v2-to-fhir-converter/CodeSystem/99LAB). OBX 2: a LOINC
# code. OBX 3: status W (wrong result), which the site's message hook drops.
ORU = (
    "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102080000||ORU^R01^ORU_R01|C1|P|2.5.1\r"
    "PID|1||777^^^HOSP^MR~A55^^^CITY^PI||ROE^RICHARD||19700101|M\r"
    "OBR|1|P1|F1|24317-0^CBC^LN|||20240102073000\r"
    "OBX|1|NM|GLU^Glucose^99LAB||95|mg/dL^^UCUM|||||F\r"
    "OBX|2|NM|718-7^Hemoglobin^LN||13.5|g/dL^^UCUM|||||F\r"
    "OBX|3|NM|GLU^Glucose^99LAB||9500|mg/dL^^UCUM|||||W\r"
)

HOOKS_YAML = """\
- {segment: "PID[Patient]", lua: site.lua, function: city_id}
- {message: ORU_R01, lua: site.lua, function: drop_wrong_results}
"""

SITE_LUA = """\
-- The city's person id (the PID-3 repetition with authority CITY) as an identifier with the
-- city's system.
function city_id(msg, patient, bundle)
  for i = 1, msg:repetitions("PID-3") do
    if msg:get("PID-3[" .. i .. "].4") == "CITY" then
      patient:set("identifier[+].system", "urn:example:city-person-id")
      patient:set("identifier[last].value", msg:get("PID-3[" .. i .. "].1"))
    end
  end
end

-- Results sent as wrong (OBX-11 W) are not stored; the DiagnosticReport's result list is written
-- after this hook, so it does not name them.
function drop_wrong_results(msg, bundle)
  for _, obs in ipairs(bundle:resources("Observation")) do
    if obs:get("status") == "entered-in-error" then obs:drop() end
  end
end
"""

CONCEPTMAP = {
    "resourceType": "ConceptMap",
    "url": "http://hosp.example/fhir/ConceptMap/local-lab",
    "status": "active",
    "group": [{
        "source": "http://example.com/v2-to-fhir-converter/CodeSystem/99LAB",
        "target": "http://loinc.org",
        "element": [{
            "code": "GLU",
            "target": [{"code": "2345-7", "display": "Glucose [Mass/volume] in Serum or Plasma",
                        "equivalence": "equivalent"}],
        }],
    }],
}


class ConvertSiteHooksTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.site = os.path.join(self.tmp.name, "site")
        self.write("site/hooks/site.yaml", HOOKS_YAML)
        self.write("site/lua/site.lua", SITE_LUA)
        self.write("site/conceptmaps/local-lab.json", json.dumps(CONCEPTMAP, indent=2))
        self.input = self.write("oru.hl7", ORU)

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def convert(self, *args):
        return subprocess.run([BIN, "convert", *args], capture_output=True, timeout=120)

    def resources(self, bundle, kind):
        return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]

    def test_hooks_and_conceptmap(self):
        r = self.convert("--ndjson", "--maps", self.site, self.input)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        bundle = json.loads(r.stdout)

        patient, = self.resources(bundle, "Patient")
        self.assertIn({"system": "urn:example:city-person-id", "value": "A55"},
                      patient["identifier"])

        # OBX-11 W is status entered-in-error (shipped ObservationStatus vocabulary): OBX 3 is
        # dropped, OBX 1 and 2 stay.
        observations = self.resources(bundle, "Observation")
        self.assertEqual(sorted(o["valueQuantity"]["value"] for o in observations), [13.5, 95])
        report, = self.resources(bundle, "DiagnosticReport")
        ids = {"Observation/" + o["id"] for o in observations}
        self.assertEqual({x["reference"] for x in report["result"]}, ids)

        # GLU of 99LAB gets LOINC 2345-7 next to it; the LOINC hemoglobin is left alone.
        glucose, = [o for o in observations if o["valueQuantity"]["value"] == 95]
        self.assertEqual(glucose["code"]["coding"], [
            {"system": "http://example.com/v2-to-fhir-converter/CodeSystem/99LAB",
             "code": "GLU", "display": "Glucose"},
            {"system": "http://loinc.org", "code": "2345-7",
             "display": "Glucose [Mass/volume] in Serum or Plasma"},
        ])
        hemoglobin, = [o for o in observations if o["valueQuantity"]["value"] == 13.5]
        self.assertEqual(len(hemoglobin["code"]["coding"]), 1)

        # Without the site maps: three Observations, no LOINC glucose, no city identifier.
        plain = json.loads(self.convert("--ndjson", self.input).stdout)
        self.assertEqual(len(self.resources(plain, "Observation")), 3)
        self.assertNotIn("2345-7", json.dumps(plain))
        self.assertNotIn("urn:example:city-person-id", json.dumps(plain))

    def test_explain_names_the_hook_line(self):
        r = self.convert("--explain", "--maps", self.site, self.input)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        out = r.stdout.decode()
        # The value A55 was set on line 7 of site.lua by the hook declared on line 1 of site.yaml;
        # the shipped PID[Patient] made identifier[0] and [1] from the two PID-3 repetitions.
        lua = os.path.join(self.site, "lua", "site.lua")
        self.assertIn("identifier[2].value = A55", out)  # after PID-3 repetitions 1 and 2
        self.assertIn("from (hook) by %s:7 (hook city_id of %s:1)"
                      % (lua, os.path.join(self.site, "hooks", "site.yaml")), out)

    def test_hook_error_fails_the_message_with_file_and_line(self):
        self.write("site/lua/site.lua", SITE_LUA.replace(
            'patient:set("identifier[+].system"', 'patient:sett("identifier[+].system"'))
        r = self.convert("--maps", self.site, self.input)
        self.assertNotEqual(r.returncode, 0)
        err = r.stderr.decode()
        self.assertIn("cannot convert", err)
        self.assertIn("hooks/site.yaml:1: hook 'city_id' failed", err)
        self.assertIn("site.lua:6: attempt to call a nil value (method 'sett')", err)

    def test_bad_conceptmap_is_refused(self):
        self.write("site/conceptmaps/local-lab.json", '{"resourceType": "ConceptMap", "group": 3}')
        r = self.convert("--maps", self.site, self.input)
        self.assertEqual(r.returncode, 2)
        self.assertIn("local-lab.json: not a usable FHIR R4 ConceptMap: 'group' must be a "
                      "non-empty array", r.stderr.decode())


if __name__ == "__main__":
    unittest.main()
