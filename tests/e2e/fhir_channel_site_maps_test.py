"""End-to-end: a channel's `transformer: {type: fhir, maps: DIR}` runs the site maps directory
(relative to the config file) in `isthmus serve`: a Lua hook of the site changes the Patient of
each Bundle, a site ConceptMap adds a LOINC coding, and a message the hook refuses ends in state
`error` naming the hook's file and line (docs/mapping-guide.md "Lua hooks", docs/configuration.md).
"""
import json
import os
import tempfile
import unittest

from serve_test import MllpClient, Server, msa, wait_for

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
    transformer: {{type: fhir, maps: site}}
    destinations: [bundles]
destinations:
  - name: bundles
    type: file
    directory: {files}
    filename: "${{control_id}}-${{message_id}}.json"
"""

HOOKS = "- {segment: \"PID[Patient]\", lua: site.lua, function: mrn_required}\n"

# Line 4 raises for a PID without an MRN; line 6 marks the Patient.
SITE_LUA = """\
function mrn_required(msg, patient)
  local mrn = msg:get("PID-3.1")
  if mrn == nil then
    error("no MRN in PID-3")
  end
  patient:set("meta.tag[+].code", "site-checked")
end
"""

CONCEPTMAP = {
    "resourceType": "ConceptMap",
    "group": [{
        "source": "http://example.com/v2-to-fhir-converter/CodeSystem/99LAB",
        "target": "http://loinc.org",
        "element": [{"code": "GLU", "target": [{"code": "2345-7", "equivalence": "equivalent"}]}],
    }],
}


def oru(control_id, pid3):
    return ("MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102080000||ORU^R01^ORU_R01|%s|P|2.5.1\r"
            "PID|1||%s||ROE^RICHARD||19700101|M\r"
            "OBR|1|P1|F1|24317-0^CBC^LN|||20240102073000\r"
            "OBX|1|NM|GLU^Glucose^99LAB||95|mg/dL^^UCUM|||||F\r" % (control_id, pid3))


class FhirChannelSiteMapsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.files = os.path.join(self.tmp.name, "files")
        site = os.path.join(self.tmp.name, "site")
        for rel, text in (("hooks/site.yaml", HOOKS), ("lua/site.lua", SITE_LUA),
                          ("conceptmaps/lab.json", json.dumps(CONCEPTMAP))):
            os.makedirs(os.path.dirname(os.path.join(site, rel)), exist_ok=True)
            with open(os.path.join(site, rel), "w") as f:
                f.write(text)
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

    def test_site_hook_and_conceptmap_in_the_engine(self):
        c = MllpClient(self.server.mllp_port)
        self.assertEqual(msa(c.send(oru("S1", "777^^^HOSP^MR")))[1], "AA")
        self.assertEqual(msa(c.send(oru("S2", "")))[1], "AA")  # after-persist: ACKed, then fails
        c.close()

        self.assertEqual(self.state_of("S1")["state"], "delivered:bundles")
        names = [n for n in os.listdir(self.files) if not n.startswith(".")]
        s1, = [n for n in names if n.startswith("S1-")]
        with open(os.path.join(self.files, s1)) as f:
            bundle = json.load(f)
        resources = [e["resource"] for e in bundle["entry"]]
        patient, = [r for r in resources if r["resourceType"] == "Patient"]
        self.assertEqual(patient["meta"]["tag"], [{"code": "site-checked"}])
        obs, = [r for r in resources if r["resourceType"] == "Observation"]
        self.assertEqual([c["code"] for c in obs["code"]["coding"]], ["GLU", "2345-7"])

        failed = self.state_of("S2")
        self.assertEqual(failed["state"], "error")
        reason = failed["events"][-1]["reason"]
        self.assertIn("hooks/site.yaml:1: hook 'mrn_required' failed", reason)
        self.assertIn("lua/site.lua:4: no MRN in PID-3", reason)
        self.assertFalse([n for n in os.listdir(self.files) if n.startswith("S2-")])


if __name__ == "__main__":
    unittest.main()
