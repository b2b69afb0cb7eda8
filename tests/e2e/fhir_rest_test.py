"""End-to-end tests of the FHIR R4 REST API at /fhir: the real binary and a real client
(npm fhir-kit-client, tests/e2e/peers/fhir_kit_client.mjs) for CRUD, If-Match conflicts,
delete/410, history paging, transactions with urn:uuid references and OperationOutcome errors;
raw HTTP for headers; and MLLP -> `transformer: fhir` -> `fhir_local` -> GET through /fhir.
"""
import base64
import datetime
import email.utils
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


# The FHIR server with 2 HTTP handler threads (serve wants a listener; its channel is unused).
CONCURRENT_CONFIG = """
server:
  data_dir: {data}
  http_address: 127.0.0.1:0
  http_threads: 2
listeners:
  - name: main
    address: 127.0.0.1:0
    channel: files
channels:
  - name: files
    destinations: [files]
destinations:
  - name: files
    type: file
    directory: {data}/out
"""


class FhirConcurrentCreateTest(unittest.TestCase):
    """POST /fhir/{type} answers from the store's commit callback (asynchronous; that it holds no
    handler thread is net_test's HttpServerAsyncTest): with more creates at once than HTTP
    handler threads (2 here) each succeeds once and reads back, and If-None-Exist still creates
    exactly one resource when 20 clients race with the same condition (conditions are resolved
    inside the writer's op, one op at a time)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        config = os.path.join(self.tmp.name, "isthmus.yaml")
        with open(config, "w") as f:
            f.write(CONCURRENT_CONFIG.format(data=os.path.join(self.tmp.name, "data")))
        self.server = Server(self.tmp.name, extra=["--config", config])

    def tearDown(self):
        self.server.stop()
        self.tmp.cleanup()

    def race(self, n, body, headers=None):
        import threading
        results = [None] * n
        start = threading.Barrier(n)

        def one(i):
            start.wait()
            results[i] = http(self.server.http_port, "POST", "/fhir/Patient", body(i), headers)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def test_many_creates_in_flight(self):
        port = self.server.http_port
        n = 40
        results = self.race(n, lambda i: json.dumps(
            {"resourceType": "Patient", "name": [{"family": "Racer", "given": ["G%d" % i]}]}))
        ids = set()
        for i, (status, headers, body) in enumerate(results):
            self.assertEqual(status, 201, body)
            location = headers["Location"]
            self.assertRegex(location, r"/fhir/Patient/[A-Za-z0-9\-.]+/_history/1$")
            pid = location.split("/fhir/Patient/")[1].split("/")[0]
            ids.add(pid)
            status, _, read = http(port, "GET", "/fhir/Patient/" + pid)
            self.assertEqual(status, 200)
            self.assertEqual(json.loads(read)["name"][0]["given"], ["G%d" % i])
        self.assertEqual(len(ids), n)
        status, _, found = http(port, "GET", "/fhir/Patient?family=racer&_summary=count")
        self.assertEqual(json.loads(found)["total"], n)

    def test_conditional_creates_racing_create_one(self):
        port = self.server.http_port
        body = json.dumps({"resourceType": "Patient",
                           "identifier": [{"system": "urn:race", "value": "1"}]})
        results = self.race(20, lambda i: body, {"If-None-Exist": "identifier=urn:race|1"})
        statuses = sorted(r[0] for r in results)
        self.assertEqual(statuses, [200] * 19 + [201], [r[2] for r in results])
        # Every answer is the one Patient (201: created; 200: the match, http.html#ccreate).
        ids = {json.loads(r[2])["id"] for r in results}
        self.assertEqual(len(ids), 1, ids)
        status, _, found = http(port, "GET", "/fhir/Patient?identifier=urn:race|1&_summary=count")
        self.assertEqual(json.loads(found)["total"], 1)


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

    def run_peer(self, script):
        """Runs a fhir-kit-client scenario (tests/e2e/peers) against the server."""
        node = node_binary()
        if not node or not os.path.isdir(os.path.join(ROOT, "node_modules", "fhir-kit-client")):
            self.skipTest("node or fhir-kit-client missing: run scripts/bootstrap")
        out = subprocess.run(
            [node, os.path.join(ROOT, "tests", "e2e", "peers", script),
             "http://127.0.0.1:%d/fhir" % self.server.http_port],
            capture_output=True, text=True, timeout=120, cwd=ROOT)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("done", out.stdout)

    def test_fhir_kit_client(self):
        self.run_peer("fhir_kit_client.mjs")

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
        # PATCH with a FHIR body is FHIRPath Patch, whose body is a Parameters resource (400
        # otherwise); a body that is neither JSON Patch nor FHIR is 415.
        status, _, body = http(port, "PATCH", "/fhir/Patient/" + pid, "[]")
        self.assertEqual(status, 400)
        status, _, body = http(port, "PATCH", "/fhir/Patient/" + pid, "[]",
                               {"Content-Type": "text/plain"})
        self.assertEqual(status, 415)
        status, _, body = http(port, "POST", "/fhir/Patient", "<Patient/>",
                               {"Content-Type": "application/fhir+xml"})
        self.assertEqual(status, 415)
        # A FHIRPath Patch path is client input: a deeply nested one is a 400, not a crash.
        for depth in (150, 20000):
            deep = "(" * depth + "Patient.name" + ")" * depth
            patch = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
                {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": deep},
                {"name": "value", "valueString": "x"}]}]}
            status, _, body = http(port, "PATCH", "/fhir/Patient/" + pid, json.dumps(patch),
                                   {"Content-Type": "application/fhir+json"})
            self.assertEqual(status, 400, body[-200:])
            self.assertEqual(json.loads(body)["resourceType"], "OperationOutcome")
        status, _, _ = http(port, "GET", "/fhir/Patient/" + pid)
        self.assertEqual(status, 200)  # still serving
        status, _, body = http(port, "GET", "/fhir/Patient/" + pid + "?_pretty=true")
        self.assertIn('\n  "resourceType": "Patient"', body)
        status, _, body = http(port, "PUT", "/fhir/Patient/" + pid,
                               json.dumps({"resourceType": "Patient", "id": "other"}))
        self.assertEqual(status, 400)

    def test_prefer_variants_history_since_and_delete(self):
        port = self.server.http_port
        # Prefer: return=OperationOutcome (http.html#ops): the status and headers of the write,
        # an OperationOutcome as the body instead of the resource; the default is the resource.
        status, headers, body = http(port, "POST", "/fhir/Patient", '{"resourceType":"Patient"}',
                                     {"Prefer": "return=OperationOutcome"})
        self.assertEqual((status, json.loads(body)["resourceType"]), (201, "OperationOutcome"))
        pid = headers["Location"].split("/")[-3]
        self.assertEqual(headers["ETag"], 'W/"1"')
        status, headers, body = http(port, "PUT", "/fhir/Patient/" + pid,
                                     json.dumps({"resourceType": "Patient", "id": pid,
                                                 "active": True}),
                                     {"Prefer": "return=OperationOutcome"})
        self.assertEqual((status, json.loads(body)["resourceType"], headers["ETag"]),
                         (200, "OperationOutcome", 'W/"2"'))
        status, _, body = http(port, "PUT", "/fhir/Patient/" + pid,
                               json.dumps({"resourceType": "Patient", "id": pid, "active": False}),
                               {"Prefer": "return=representation"})
        self.assertEqual((status, json.loads(body)["meta"]["versionId"]), (200, "3"))
        # _since on instance history: only versions at or after that instant (version 3's
        # lastUpdated), newest first; before version 1, all three. (Two versions may share a
        # millisecond on a fast disk: the expected list follows their lastUpdated.)
        updated = {}
        for v in ("1", "2", "3"):
            _, _, body = http(port, "GET", "/fhir/Patient/%s/_history/%s" % (pid, v))
            updated[v] = json.loads(body)["meta"]["lastUpdated"]
        since3 = updated["3"]
        _, _, body = http(port, "GET", "/fhir/Patient/%s/_history?_since=%s" % (pid, since3))
        self.assertEqual([e["resource"]["meta"]["versionId"] for e in json.loads(body)["entry"]],
                         [v for v in ("3", "2", "1") if updated[v] >= since3])
        _, _, body = http(port, "GET", "/fhir/Patient/%s/_history?_since=2000-01-01T00:00:00Z"
                          % pid)
        self.assertEqual(len(json.loads(body)["entry"]), 3)
        # Delete with return=minimal: 204 without a body. Then read and vread of the deleted
        # version are 410 Gone; older versions stay readable; history lists the deletion first
        # (request DELETE, no resource: http.html#history).
        status, headers, body = http(port, "DELETE", "/fhir/Patient/" + pid, None,
                                     {"Prefer": "return=minimal"})
        self.assertEqual((status, body, headers["ETag"]), (204, "", 'W/"4"'))
        for path in ("", "/_history/4"):
            status, _, body = http(port, "GET", "/fhir/Patient/%s%s" % (pid, path))
            self.assertEqual((status, json.loads(body)["resourceType"]), (410, "OperationOutcome"))
        status, _, _ = http(port, "GET", "/fhir/Patient/%s/_history/3" % pid)
        self.assertEqual(status, 200)
        _, _, body = http(port, "GET", "/fhir/Patient/%s/_history" % pid)
        entries = json.loads(body)["entry"]
        self.assertEqual([e["request"]["method"] for e in entries], ["DELETE", "PUT", "PUT", "POST"])
        self.assertNotIn("resource", entries[0])
        # The Patient type's search no longer finds it; a conditional delete matching two
        # resources is 412 and deletes neither.
        status, _, body = http(port, "GET", "/fhir/Patient?_id=" + pid)
        self.assertEqual(json.loads(body).get("entry", []), [])
        for _ in range(2):
            http(port, "POST", "/fhir/Patient", json.dumps(
                {"resourceType": "Patient", "identifier": [{"system": "urn:dup", "value": "1"}]}))
        status, _, body = http(port, "DELETE", "/fhir/Patient?identifier=urn:dup|1")
        self.assertEqual((status, json.loads(body)["issue"][0]["code"]), (412, "conflict"))
        _, _, body = http(port, "GET", "/fhir/Patient?identifier=urn:dup|1&_summary=count")
        self.assertEqual(json.loads(body)["total"], 2)

    def test_summary_text_and_data(self):
        # search.html#summary: `text` is text, id, meta and the mandatory top-level elements
        # (a Patient has none); `data` is everything but text; `false` the whole resource. A
        # subset carries the SUBSETTED tag.
        port = self.server.http_port
        narrative = {"status": "generated",
                     "div": '<div xmlns="http://www.w3.org/1999/xhtml">Jo</div>'}
        status, _, body = http(port, "POST", "/fhir/Patient", json.dumps(
            {"resourceType": "Patient", "text": narrative, "name": [{"family": "Jo"}],
             "gender": "other"}))
        self.assertEqual(status, 201)
        pid = json.loads(body)["id"]
        members = {}
        for summary in ("text", "data", "false"):
            status, _, body = http(port, "GET", "/fhir/Patient/%s?_summary=%s" % (pid, summary))
            self.assertEqual(status, 200, body)
            r = json.loads(body)
            tags = [t.get("code") for t in r["meta"].get("tag", [])]
            members[summary] = (sorted(k for k in r if k != "meta"), "SUBSETTED" in tags)
        self.assertEqual(members["text"], (["id", "resourceType", "text"], True))
        self.assertEqual(members["data"], (["gender", "id", "name", "resourceType"], True))
        self.assertEqual(members["false"], (["gender", "id", "name", "resourceType", "text"],
                                            False))

    def test_everything_paged_under_concurrent_writes(self):
        # $everything's next links are positions (type, then id), not offsets: with writes
        # between pages (a new Observation of the patient, a new version of one already seen)
        # every resource that was there at the start is seen exactly once, the new one at most
        # once (before or after the position, by its id).
        port = self.server.http_port
        _, _, body = http(port, "POST", "/fhir/Patient", '{"resourceType":"Patient"}')
        pid = json.loads(body)["id"]

        def observation(text):
            _, _, body = http(port, "POST", "/fhir/Observation", json.dumps(
                {"resourceType": "Observation", "status": "final", "code": {"text": text},
                 "subject": {"reference": "Patient/" + pid}}))
            return json.loads(body)["id"]

        originals = {pid} | {observation("o%d" % i) for i in range(6)}
        url = "/fhir/Patient/%s/$everything?_count=2" % pid
        seen, added, first_page = [], None, True
        while url:
            status, _, body = http(port, "GET", url)
            self.assertEqual(status, 200, body)
            page = json.loads(body)
            seen += [e["resource"]["id"] for e in page["entry"]]
            if first_page:
                added = observation("late")
                http(port, "PUT", "/fhir/Observation/" + seen[-1], json.dumps(
                    {"resourceType": "Observation", "id": seen[-1], "status": "amended",
                     "code": {"text": "changed"}, "subject": {"reference": "Patient/" + pid}}))
                first_page = False
            nxt = [l["url"] for l in page["link"] if l["relation"] == "next"]
            url = nxt[0].split(str(port), 1)[1] if nxt else None
        for rid in originals:
            self.assertEqual(seen.count(rid), 1, rid)
        self.assertLessEqual(seen.count(added), 1)
        self.assertEqual(set(seen) - originals - {added}, set())

    def test_fhir_kit_client_conditional_patch_everything(self):
        self.run_peer("fhir_kit_rest.mjs")

    def test_conditional_interactions_patch_and_everything_by_http(self):
        port = self.server.http_port
        mrn = {"system": "urn:mrn", "value": "e2e-1"}
        body = json.dumps({"resourceType": "Patient", "identifier": [mrn], "gender": "male"})
        # If-None-Exist: 201, then 200 with the same resource (http.html#ccreate).
        status, _, created = http(port, "POST", "/fhir/Patient", body,
                                  {"If-None-Exist": "identifier=urn:mrn|e2e-1"})
        self.assertEqual(status, 201)
        pid = json.loads(created)["id"]
        status, headers, again = http(port, "POST", "/fhir/Patient", body,
                                      {"If-None-Exist": "identifier=urn:mrn|e2e-1"})
        self.assertEqual((status, json.loads(again)["id"], headers["ETag"]), (200, pid, 'W/"1"'))
        # Conditional update: one match -> version 2 of it.
        status, headers, _ = http(port, "PUT", "/fhir/Patient?identifier=urn%3Amrn%7Ce2e-1",
                                  body, {"Prefer": "return=minimal"})
        self.assertEqual((status, headers["ETag"]), (200, 'W/"2"'))
        # JSON Patch with If-Match; a stale one is 412, a failed test 422, a malformed patch 400.
        patch = json.dumps([{"op": "replace", "path": "/gender", "value": "female"}])
        ct = {"Content-Type": "application/json-patch+json"}
        status, headers, patched = http(port, "PATCH", "/fhir/Patient/" + pid, patch,
                                        dict(ct, **{"If-Match": 'W/"2"'}))
        self.assertEqual((status, json.loads(patched)["gender"], headers["ETag"]),
                         (200, "female", 'W/"3"'))
        status, _, _ = http(port, "PATCH", "/fhir/Patient/" + pid, patch,
                            dict(ct, **{"If-Match": 'W/"2"'}))
        self.assertEqual(status, 412)
        status, _, outcome = http(port, "PATCH", "/fhir/Patient/" + pid,
                                  json.dumps([{"op": "test", "path": "/gender", "value": "male"}]),
                                  ct)
        self.assertEqual((status, json.loads(outcome)["resourceType"]), (422, "OperationOutcome"))
        status, _, _ = http(port, "PATCH", "/fhir/Patient/" + pid, '{"op":"add"}', ct)
        self.assertEqual(status, 400)
        # A transaction: a conditional reference, a conditional create that matches, a PATCH
        # entry (Binary) and a conditional delete of nothing.
        patch_b64 = base64.b64encode(
            json.dumps([{"op": "add", "path": "/active", "value": True}]).encode()).decode()
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:6a0c8f4e-0b7e-4a51-9a57-3f1f8a0e0c11",
             "resource": json.loads(body),
             "request": {"method": "POST", "url": "Patient",
                         "ifNoneExist": "identifier=urn:mrn|e2e-1"}},
            {"resource": {"resourceType": "Encounter", "status": "finished",
                          "class": {"code": "AMB"},
                          "subject": {"reference": "Patient?identifier=urn:mrn|e2e-1"}},
             "request": {"method": "POST", "url": "Encounter"}},
            {"resource": {"resourceType": "Observation", "status": "final",
                          "code": {"text": "x"},
                          "subject": {"reference": "urn:uuid:6a0c8f4e-0b7e-4a51-9a57-3f1f8a0e0c11"}},
             "request": {"method": "POST", "url": "Observation"}},
            {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json",
                          "data": patch_b64},
             "request": {"method": "PATCH", "url": "Patient/" + pid}},
            {"request": {"method": "DELETE", "url": "Patient?identifier=urn:mrn|nobody"}}]}
        status, _, resp = http(port, "POST", "/fhir", json.dumps(bundle))
        self.assertEqual(status, 200, resp)
        statuses = [e["response"]["status"] for e in json.loads(resp)["entry"]]
        self.assertEqual(statuses, ["200 OK", "201 Created", "201 Created", "200 OK",
                                    "204 No Content"])
        # A conditional reference that matches nothing fails the whole transaction (412).
        bad = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Encounter", "status": "finished",
                          "class": {"code": "AMB"},
                          "subject": {"reference": "Patient?identifier=urn:mrn|nobody"}},
             "request": {"method": "POST", "url": "Encounter"}}]}
        status, _, outcome = http(port, "POST", "/fhir", json.dumps(bad))
        self.assertEqual(status, 412)
        self.assertIn("Bundle.entry[0]", outcome)
        # $everything: the patient, its Encounter and Observation, paged by _count.
        status, _, page = http(port, "GET", "/fhir/Patient/%s/$everything?_count=2" % pid)
        self.assertEqual(status, 200, page)
        page = json.loads(page)
        self.assertEqual(page["total"], 3)
        seen = [e["resource"]["resourceType"] for e in page["entry"]]
        nxt = [l["url"] for l in page["link"] if l["relation"] == "next"]
        with urllib.request.urlopen(nxt[0], timeout=10) as r:
            seen += [e["resource"]["resourceType"] for e in json.loads(r.read())["entry"]]
        self.assertEqual(sorted(seen), ["Encounter", "Observation", "Patient"])
        status, _, _ = http(port, "GET", "/fhir/Patient/nobody/$everything")
        self.assertEqual(status, 404)
        # _summary=true drops non-summary elements and says SUBSETTED.
        status, _, summary = http(port, "GET", "/fhir/Patient/%s?_summary=true" % pid)
        summary = json.loads(summary)
        self.assertIn("SUBSETTED", [t["code"] for t in summary["meta"]["tag"]])
        self.assertTrue(summary["active"])
        # Conditional delete: two matches 412, one match deleted (410 afterwards).
        http(port, "POST", "/fhir/Patient", json.dumps({"resourceType": "Patient",
                                                        "gender": "female"}))
        status, _, _ = http(port, "DELETE", "/fhir/Patient?gender=female")
        self.assertEqual(status, 412)
        status, _, _ = http(port, "DELETE", "/fhir/Patient?identifier=urn:mrn|e2e-1")
        self.assertEqual(status, 200)
        status, _, _ = http(port, "GET", "/fhir/Patient/" + pid)
        self.assertEqual(status, 410)

    def test_conditional_read_conditional_patch_fhirpath_patch_everything_dates(self):
        port = self.server.http_port
        status, headers, body = http(port, "POST", "/fhir/Patient", json.dumps(
            {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "cr-1"}],
             "name": [{"family": "Cread"}]}))
        self.assertEqual(status, 201)
        pid = json.loads(body)["id"]
        last_modified = headers["Last-Modified"]
        # Conditional read (http.html#cread): the current ETag -> 304 without a body.
        status, headers, body = http(port, "GET", "/fhir/Patient/" + pid,
                                     headers={"If-None-Match": 'W/"1"'})
        self.assertEqual((status, body, headers["ETag"]), (304, "", 'W/"1"'))
        status, _, body = http(port, "GET", "/fhir/Patient/" + pid,
                               headers={"If-None-Match": 'W/"7"'})
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["id"], pid)
        # If-Modified-Since: not modified since its own Last-Modified; modified since a minute
        # before it.
        status, _, _ = http(port, "GET", "/fhir/Patient/" + pid,
                            headers={"If-Modified-Since": last_modified})
        self.assertEqual(status, 304)
        earlier = email.utils.format_datetime(
            email.utils.parsedate_to_datetime(last_modified) - datetime.timedelta(minutes=1),
            usegmt=True)
        status, _, _ = http(port, "GET", "/fhir/Patient/" + pid,
                            headers={"If-Modified-Since": earlier})
        self.assertEqual(status, 200)
        status, _, _ = http(port, "GET", "/fhir/Patient/%s/_history/1" % pid,
                            headers={"If-None-Match": 'W/"1"'})
        self.assertEqual(status, 304)
        # Conditional patch (http.html#patch): one match patched, none 404, several 412.
        ct = {"Content-Type": "application/json-patch+json"}
        activate = json.dumps([{"op": "add", "path": "/active", "value": True}])
        status, headers, body = http(port, "PATCH", "/fhir/Patient?identifier=urn:mrn|cr-1",
                                     activate, ct)
        self.assertEqual((status, headers["ETag"], json.loads(body)["active"]),
                         (200, 'W/"2"', True))
        status, _, _ = http(port, "PATCH", "/fhir/Patient?identifier=urn:mrn|nobody",
                            activate, ct)
        self.assertEqual(status, 404)
        http(port, "POST", "/fhir/Patient", json.dumps(
            {"resourceType": "Patient", "name": [{"family": "Cread"}]}))
        status, _, outcome = http(port, "PATCH", "/fhir/Patient?family=cread", activate, ct)
        self.assertEqual((status, json.loads(outcome)["resourceType"]), (412, "OperationOutcome"))
        # FHIRPath Patch (fhirpatch.html): a Parameters body, application/fhir+json.
        def op(type_, path, **parts):
            p = [{"name": "type", "valueCode": type_}, {"name": "path", "valueString": path}]
            for k, v in parts.items():
                p.append(dict({"name": k.split("_")[0]}, **v))
            return {"name": "operation", "part": p}
        params = {"resourceType": "Parameters", "parameter": [
            op("add", "Patient", name={"valueString": "birthDate"},
               value={"valueDate": "1930-01-01"}),
            op("insert", "Patient.identifier", index={"valueInteger": 0},
               value={"valueIdentifier": {"system": "urn:other", "value": "o-1"}}),
            op("replace", "Patient.active", value={"valueBoolean": False})]}
        status, headers, body = http(port, "PATCH", "/fhir/Patient/" + pid, json.dumps(params),
                                     {"If-Match": 'W/"2"'})
        self.assertEqual(status, 200, body)
        patched = json.loads(body)
        self.assertEqual((patched["birthDate"], patched["active"], headers["ETag"]),
                         ("1930-01-01", False, 'W/"3"'))
        self.assertEqual([i["value"] for i in patched["identifier"]], ["o-1", "cr-1"])
        # The search index follows: the identifier inserted by the patch finds it.
        status, _, found = http(port, "GET", "/fhir/Patient?identifier=urn:other|o-1")
        self.assertEqual([e["resource"]["id"] for e in json.loads(found)["entry"]], [pid])
        # Cannot be applied: 422 with an OperationOutcome; malformed: 400.
        nothing = {"resourceType": "Parameters", "parameter": [
            op("replace", "Patient.gender", value={"valueCode": "male"})]}
        status, _, outcome = http(port, "PATCH", "/fhir/Patient/" + pid, json.dumps(nothing))
        self.assertEqual((status, json.loads(outcome)["resourceType"]), (422, "OperationOutcome"))
        bad = {"resourceType": "Parameters", "parameter": [op("frobnicate", "Patient.gender")]}
        status, _, _ = http(port, "PATCH", "/fhir/Patient/" + pid, json.dumps(bad))
        self.assertEqual(status, 400)
        # In a transaction: a PATCH entry with a conditional url and a Parameters resource.
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Parameters", "parameter": [
                op("delete", "Patient.birthDate")]},
             "request": {"method": "PATCH", "url": "Patient?identifier=urn:mrn|cr-1"}}]}
        status, _, resp = http(port, "POST", "/fhir", json.dumps(bundle))
        self.assertEqual(status, 200, resp)
        entry = json.loads(resp)["entry"][0]["response"]
        self.assertEqual((entry["status"], entry["etag"]), ("200 OK", 'W/"4"'))
        status, _, body = http(port, "GET", "/fhir/Patient/" + pid)
        self.assertNotIn("birthDate", json.loads(body))
        bundle["entry"][0]["request"]["url"] = "Patient?identifier=urn:mrn|nobody"
        status, _, outcome = http(port, "POST", "/fhir", json.dumps(bundle))
        self.assertEqual(status, 404, outcome)
        self.assertIn("Bundle.entry[0]", outcome)
        # $everything start/end: care dates overlapping the period (Observation.effective).
        for day in ("2023-06-15", "2024-05-01"):
            http(port, "POST", "/fhir/Observation", json.dumps(
                {"resourceType": "Observation", "status": "final", "code": {"text": day},
                 "subject": {"reference": "Patient/" + pid}, "effectiveDateTime": day}))
        def everything(query):
            status, _, page = http(port, "GET", "/fhir/Patient/%s/$everything?%s" % (pid, query))
            self.assertEqual(status, 200, page)
            return sorted(e["resource"].get("effectiveDateTime", e["resource"]["resourceType"])
                          for e in json.loads(page)["entry"])
        self.assertEqual(everything("start=2024"), ["2024-05-01", "Patient"])
        self.assertEqual(everything("end=2023-12"), ["2023-06-15", "Patient"])
        self.assertEqual(everything("start=2023-06-15&end=2024-05-01"),
                         ["2023-06-15", "2024-05-01", "Patient"])
        status, _, _ = http(port, "GET", "/fhir/Patient/%s/$everything?start=June" % pid)
        self.assertEqual(status, 400)
        # $validate mode=update: the resource's id must be the URL's.
        status, _, outcome = http(port, "POST", "/fhir/Patient/%s/$validate?mode=update" % pid,
                                  json.dumps({"resourceType": "Patient", "id": "someone-else"}))
        issue = json.loads(outcome)["issue"][0]
        self.assertEqual((status, issue["severity"], issue["expression"]),
                         (200, "error", ["Patient.id"]))
        status, _, outcome = http(port, "GET", "/fhir/Patient/%s/$validate?mode=delete" % pid)
        self.assertEqual((status, json.loads(outcome)["issue"][0]["severity"]),
                         (200, "information"))
        # The CapabilityStatement says so.
        status, _, meta = http(port, "GET", "/fhir/metadata")
        patient = [r for r in json.loads(meta)["rest"][0]["resource"] if r["type"] == "Patient"]
        self.assertEqual(patient[0]["conditionalRead"], "full-support")

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
