"""End-to-end: the admin API's endpoints and JSON shapes (issue #3's minimum) against the real
binary: /api/messages with its filters, /api/messages/{id} with its events, reprocessing a message,
/api/dead-letters and reprocessing dead letters of a whole destination, and /api/channels with
every per-channel counter.

The downstream MLLP system answers AR (never retried: dead-lettered at once), then AA.
"""
import json
import os
import signal
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from routing_test import SERVE_HEAD, DownstreamPeer
from serve_test import MllpClient, Server, adt, msa, wait_for

CONFIG = SERVE_HEAD + """channels:
  - name: adt
    filter: trigger != A08
    routes:
      - when: PV1-2 = I
        to: [files, downstream]
destinations:
  - name: files
    type: file
    directory: {files}
  - name: downstream
    type: mllp
    address: 127.0.0.1:{peer}
    timeout: 2s
"""


class AdminApiTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.files = os.path.join(self.tmp.name, "files")
        self.peer = DownstreamPeer()
        self.peer.code = "AR"
        self.peer.start()
        config = os.path.join(self.tmp.name, "isthmus.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(data=os.path.join(self.tmp.name, "data"), files=self.files,
                                  peer=self.peer.port))
        self.server = Server(self.tmp.name, extra=["--config", config])
        self.before = time.time()
        c = MllpClient(self.server.mllp_port)
        for i in range(4):
            self.assertEqual(msa(c.send(adt("M%d" % i)))[1], "AA")
        self.assertEqual(msa(c.send(adt("M4").replace("ADT^A01", "ADT^A08")))[1], "AA")
        self.assertIn("MSA|AR|", c.send("MSH|^~\\&|A|B|C|D|x||ADT^A01|BAD|P|2.5.1\rnot a segment\r"))
        c.close()
        # Every routed message: delivered to the files, dead at the downstream system (AR).
        wait_for(self.destinations, lambda d: d.get("downstream", {}).get("dead") == 4
                 and d.get("files", {}).get("delivered") == 4)

    def tearDown(self):
        self.server.stop(signal.SIGKILL)
        self.peer.stop()
        self.tmp.cleanup()

    def destinations(self):
        return {d["name"]: d for d in self.server.get("/api/destinations")[1]["destinations"]}

    def request(self, method, path):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.server.http_port, path),
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def channel(self):
        status, body = self.request("GET", "/api/channels")
        self.assertEqual(status, 200)
        self.assertEqual([c["name"] for c in body["channels"]], ["adt"])
        return body["channels"][0]

    def test_channels_count_every_outcome(self):
        # After setUp (docs/operations.md says what each field counts): 6 frames received, 5
        # ACKed (M0-M4) and 1 NAKed (BAD: its listener could not parse it, so it is the
        # channel's errored message even though it never reached the pipeline); M4 (A08)
        # filtered; M0-M3 routed to both destinations: 4 delivered (files) + 4 dead (downstream
        # answered AR); nothing left in the queue.
        want = {"name": "adt", "received": 6, "acked": 5, "nacked": 1, "duplicates": 0,
                "connections_open": 0, "filtered": 1, "errored": 1, "queued": 0,
                "queued_truncated": False, "delivered": 4, "dead": 4}
        wait_for(self.channel, lambda c: c == want)

        # The downstream system hangs (answers after 5 s, past the destination's 2 s timeout): its
        # deliveries time out and are retried, so their rows stay queued. (Not stopped: a
        # session of the stopped peer still open could answer one more AR.) M0 again is a duplicate (ACKed, not processed); U1 (PV1-2 = O)
        # matches no route (errored, with BAD: 2); Q1 and Q2 are delivered to the files and queued for
        # downstream (2 rows: the head waits for its retry, Q2 behind it).
        self.peer.code = "AA"
        self.peer.delay = 5
        c = MllpClient(self.server.mllp_port)
        self.assertEqual(msa(c.send(adt("M0")))[1], "AA")
        self.assertEqual(msa(c.send(adt("U1").replace("PV1|1|I|", "PV1|1|O|")))[1], "AA")
        self.assertEqual(msa(c.send(adt("Q1")))[1], "AA")
        self.assertEqual(msa(c.send(adt("Q2")))[1], "AA")
        c.close()
        want.update(received=10, acked=9, duplicates=1, errored=2, queued=2, delivered=6)
        wait_for(self.channel, lambda c: c == want)

        # Answering at once again: the two queued rows are delivered (after the retry backoff, 1 s
        # then 2 s, 4 s by default) and leave the queue. Delivered counts per destination.
        self.peer.delay = 0
        want.update(queued=0, delivered=8)
        wait_for(self.channel, lambda c: c == want, timeout=30)
        self.assertEqual(self.peer.ids()[-2:], ["Q1", "Q2"])

    def test_messages_list_filters_and_shape(self):
        status, body = self.request("GET", "/api/messages")
        self.assertEqual(status, 200)
        self.assertEqual(set(body), {"total", "messages"})
        self.assertEqual(body["total"], 6)
        # Newest first.
        self.assertEqual([m["control_id"] for m in body["messages"]],
                         ["BAD", "M4", "M3", "M2", "M1", "M0"])
        m = body["messages"][-1]
        for key in ("id", "control_id", "channel", "state", "received_at", "message_type", "sender"):
            self.assertIn(key, m)
        self.assertEqual((m["channel"], m["message_type"], m["sender"]), ("adt", "ADT^A01", "LAB|HOSP"))
        self.assertRegex(m["received_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        # limit bounds the page, not the total.
        _, page = self.request("GET", "/api/messages?limit=2")
        self.assertEqual((page["total"], len(page["messages"])), (6, 2))
        self.assertEqual(self.request("GET", "/api/messages?state=filtered")[1]["total"], 1)
        self.assertEqual(self.request("GET", "/api/messages?state=rejected")[1]["messages"][0]["control_id"],
                         "BAD")
        self.assertEqual(self.request("GET", "/api/messages?channel=adt")[1]["total"], 6)
        self.assertEqual(self.request("GET", "/api/messages?channel=other")[1]["total"], 0)
        # since: Unix seconds or RFC 3339; before the messages all, after them none.
        self.assertEqual(self.request("GET", "/api/messages?since=%d" % (self.before - 60))[1]["total"], 6)
        self.assertEqual(self.request("GET", "/api/messages?since=2999-01-01T00:00:00Z")[1]["total"], 0)
        self.assertEqual(self.request("GET", "/api/messages?since=2000-01-01T00:00:00Z")[1]["total"], 6)
        for bad in ("limit=0", "limit=1001", "limit=x", "since=yesterday"):
            status, err = self.request("GET", "/api/messages?" + bad)
            self.assertEqual(status, 400, bad)

    def test_message_detail_has_raw_and_events_per_destination(self):
        mid = self.request("GET", "/api/messages?control_id=M0")[1]["messages"][0]["id"]
        status, d = self.request("GET", "/api/messages/%d" % mid)
        self.assertEqual(status, 200)
        self.assertIn("MSH|^~\\&|LAB|HOSP|", d["raw"])
        states = [e["state"] for e in d["events"]]
        self.assertEqual(states[:2], ["received", "queued"])
        self.assertEqual(sorted(states[2:]), ["dead:downstream", "delivered:files"])
        dead = [e for e in d["events"] if e["state"] == "dead:downstream"][0]
        self.assertIn("AR", dead["reason"])
        for e in d["events"]:
            self.assertRegex(e["at"], r"^\d{4}-\d\d-\d\dT")
        # Per destination, in routing order: where the message stands there.
        self.assertEqual([(x["name"], x["status"]) for x in d["destinations"]],
                         [("files", "delivered"), ("downstream", "dead")])
        self.assertIn("AR", d["destinations"][1]["reason"])
        self.assertEqual(d["destinations"][1]["at"], dead["at"])
        # A filtered message went nowhere.
        fid = self.request("GET", "/api/messages?control_id=M4")[1]["messages"][0]["id"]
        self.assertEqual(self.request("GET", "/api/messages/%d" % fid)[1]["destinations"], [])
        self.assertEqual(self.request("GET", "/api/messages/999999")[0], 404)
        self.assertEqual(self.request("GET", "/api/messages/abc")[0], 400)

    def test_reprocess_a_message_runs_it_through_its_channel_again(self):
        mid = self.request("GET", "/api/messages?control_id=M1")[1]["messages"][0]["id"]
        self.peer.code = "AA"
        status, body = self.request("POST", "/api/messages/%d/reprocess" % mid)
        self.assertEqual((status, body), (202, {"id": mid, "status": "reprocessing"}))
        # Both destinations deliver it again, each on its own dispatcher: in either order.
        wait_for(lambda: self.destinations(),
                 lambda d: d["downstream"]["delivered"] == 1 and d["files"]["delivered"] == 5)
        events = [e["state"] for e in self.request("GET", "/api/messages/%d" % mid)[1]["events"]]
        self.assertIn("reprocess", events)
        self.assertIn("delivered:downstream", events)
        self.assertEqual(self.peer.ids().count("M1"), 2)
        detail = self.request("GET", "/api/messages/%d" % mid)[1]
        self.assertEqual([(x["name"], x["status"]) for x in detail["destinations"]],
                         [("files", "delivered"), ("downstream", "delivered")])
        self.assertEqual(self.request("POST", "/api/messages/999999/reprocess")[0], 404)
        # A rejected message cannot be parsed again: a conflict with its state, not an outage.
        bad = self.request("GET", "/api/messages?state=rejected")[1]["messages"][0]["id"]
        status, err = self.request("POST", "/api/messages/%d/reprocess" % bad)
        self.assertEqual(status, 409, err)

    def test_dead_letters_listed_with_reason_and_reprocessed_per_destination(self):
        status, body = self.request("GET", "/api/dead-letters")
        self.assertEqual(status, 200)
        dead = body["dead_letters"]
        self.assertEqual(len(dead), 4)
        self.assertEqual(set(dead[0]), {"id", "destination", "message_id", "attempts", "reason",
                                        "dead_at", "reprocessed_at"})
        self.assertTrue(all(d["destination"] == "downstream" and "AR" in d["reason"]
                            and d["reprocessed_at"] is None for d in dead))
        self.assertEqual(self.request("GET", "/api/dead-letters?destination=files")[1]["dead_letters"], [])
        self.assertEqual(len(self.request("GET", "/api/dead-letters?limit=2")[1]["dead_letters"]), 2)
        self.assertEqual(self.request("POST", "/api/dead-letters/reprocess")[0], 400)
        self.peer.code = "AA"
        status, body = self.request("POST", "/api/dead-letters/reprocess?destination=downstream")
        self.assertEqual((status, body), (200, {"reprocessed": 4}))
        wait_for(self.destinations, lambda d: d["downstream"]["delivered"] == 4 and d["downstream"]["dead"] == 0)
        self.assertEqual(self.request("GET", "/api/dead-letters")[1]["dead_letters"], [])
        detail = self.request("GET", "/api/messages/%d" % dead[0]["message_id"])[1]
        self.assertEqual([(x["name"], x["status"]) for x in detail["destinations"]],
                         [("files", "delivered"), ("downstream", "delivered")])
        self.assertIn("reprocess", [e["state"] for e in detail["events"]])
        done = self.request("GET", "/api/dead-letters?include_reprocessed=true")[1]["dead_letters"]
        self.assertEqual(len(done), 4)
        self.assertTrue(all(d["reprocessed_at"] for d in done))
        # Once reprocessed, a dead letter is not reprocessed a second time.
        self.assertEqual(self.request("POST", "/api/dead-letters/reprocess?id=%d" % done[0]["id"])[0], 409)
        # The files destination got each message once: reprocessing is per destination.
        self.assertEqual(self.destinations()["files"]["delivered"], 4)


if __name__ == "__main__":
    unittest.main(verbosity=2)
