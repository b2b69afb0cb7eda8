"""End-to-end tests of the `isthmus` CLI (inspect, validate, --help): the real binary, real files.

Run by ctest with ISTHMUS_BIN set; `python3 tests/e2e/cli_test.py` works too with ISTHMUS_BIN.
"""
import json
import os
import subprocess
import tempfile
import unittest

BIN = os.environ.get("ISTHMUS_BIN", "build/isthmus")

VALID_ADT = (
    "MSH|^~\\&|REG|HOSP|ISTHMUS|HOSP|20240101120000||ADT^A01^ADT_A01|MSG0001|P|2.5.1\r"
    "EVN|A01|20240101120000\r"
    "PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r"
    "PV1|1|I|W1^101^A\r"
)
# The same message without PID-3, which HL7 v2.5.1 requires (PID-3 optionality R).
MISSING_PID3 = VALID_ADT.replace("PID|1||12345^^^HOSP^MR||", "PID|1||||")


def run(*args, stdin=None):
    return subprocess.run([BIN, *args], input=stdin, capture_output=True, timeout=120)


class Files:
    def __init__(self):
        self.dir = tempfile.TemporaryDirectory()

    def write(self, name, text, encoding="utf-8"):
        path = os.path.join(self.dir.name, name)
        with open(path, "wb") as f:
            f.write(text.encode(encoding) if isinstance(text, str) else text)
        return path


class HelpTest(unittest.TestCase):
    def test_top_level_help_lists_commands_with_examples(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        out = r.stdout.decode()
        for word in ("inspect", "validate", "Examples:"):
            self.assertIn(word, out)

    def test_each_command_help_teaches(self):
        for cmd, must in (("inspect", ["--path", "--format", "Exit status", "PID-3[2].4"]),
                          ("validate", ["--profile", "--version", "--json", "Exit status"])):
            r = run(cmd, "--help")
            self.assertEqual(r.returncode, 0, cmd)
            for m in must:
                self.assertIn(m, r.stdout.decode(), (cmd, m))

    def test_serve_and_config_check_help(self):
        # Every admin endpoint (admin/admin_api.h), the reload and stop signals and the drain
        # option, and config check's exit statuses (what a script branches on).
        r = run("serve", "--help")
        self.assertEqual(r.returncode, 0)
        out = r.stdout.decode()
        for m in ("/healthz", "/readyz", "/api/channels", "/api/destinations", "/api/dead-letters",
                  "/api/config/reload", "/fhir", "SIGTERM", "SIGHUP", "--drain-seconds", "--config"):
            self.assertIn(m, out, m)
        r = run("config", "check", "--help")
        self.assertEqual(r.returncode, 0)
        for m in ("FILE:LINE:COLUMN", "Exit status", "0 valid", "1 invalid", "2 the file could not be read"):
            self.assertIn(m, r.stdout.decode(), m)

    def test_usage_error_is_exit_2(self):
        self.assertEqual(run("inspect").returncode, 2)
        self.assertEqual(run("no-such-command").returncode, 2)


class InspectTest(unittest.TestCase):
    def setUp(self):
        self.files = Files()

    def test_json_shape(self):
        path = self.files.write("a.hl7", "MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\r"
                                         "PID|1||1^^^H~2||DOE^J&K\\S\\||\r")
        r = run("inspect", "--format", "json", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(len(doc), 1)
        msh, pid = doc[0]
        self.assertEqual(msh[0], "MSH")
        self.assertEqual(msh[1], [[["|"]]])            # MSH-1
        self.assertEqual(msh[2], [[["^~\\&"]]])        # MSH-2, unsplit
        self.assertEqual(msh[9], [[["ADT"], ["A01"]]])  # MSH-9
        self.assertEqual(pid[0], "PID")
        self.assertEqual(pid[2], [])                    # empty PID-2
        self.assertEqual(pid[3], [[["1"], [""], [""], ["H"]], [["2"]]])
        self.assertEqual(pid[5], [[["DOE"], ["J", "K^"]]])  # \S\ decoded inside a subcomponent
        self.assertEqual(len(pid), 8)                   # trailing empty fields are kept

    def test_path_prints_one_value_per_message(self):
        path = self.files.write("two.hl7",
                                "MSH|^~\\&|A|B|||x||ADT^A01|1|P|2.5\nPID|1||A1||ONE\n"
                                "MSH|^~\\&|A|B|||x||ADT^A01|2|P|2.5\nPID|1||A2||TWO\\T\\X\n")
        r = run("inspect", "--path", "PID-5", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode().splitlines(), ["ONE", "TWO&X"])

    def test_text_tree_names_paths(self):
        path = self.files.write("a.hl7", VALID_ADT)
        r = run("inspect", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertIn("ADT^A01, control id MSG0001, version 2.5.1", out)
        self.assertRegex(out, r"PID-3\.4 +HOSP")
        self.assertRegex(out, r"PV1-3\.2 +101")

    def test_latin1_is_decoded_to_utf8(self):
        msg = "MSH|^~\\&|A|B|||x||ADT^A01|1|P|2.5|||||DEU|8859/1\rPID|1||1||M\u00fcller\r"
        path = self.files.write("l1.hl7", msg, encoding="latin-1")
        r = run("inspect", "--path", "PID-5", path)
        self.assertEqual(r.stdout.decode("utf-8").strip(), "M\u00fcller")

    def test_unreadable_and_unparsable_are_exit_2_with_reason(self):
        r = run("inspect", "/nonexistent/x.hl7")
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent/x.hl7", r.stderr.decode())
        path = self.files.write("bad.hl7", "this is not hl7\r")
        r = run("inspect", path)
        self.assertEqual(r.returncode, 2)
        self.assertIn("before any MSH", r.stderr.decode())

    def test_stdin(self):
        r = run("inspect", "--path", "MSH-10", "-", stdin=VALID_ADT.encode())
        self.assertEqual(r.stdout.decode().strip(), "MSG0001")


class ValidateTest(unittest.TestCase):
    def setUp(self):
        self.files = Files()

    def test_valid_message_exit_0(self):
        path = self.files.write("ok.hl7", VALID_ADT)
        r = run("validate", path)
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        self.assertIn("valid", r.stdout.decode())

    def test_missing_required_field_exit_1_with_location_and_code(self):
        path = self.files.write("bad.hl7", MISSING_PID3)
        r = run("validate", "--json", path)
        self.assertEqual(r.returncode, 1, r.stdout.decode())
        doc = json.loads(r.stdout)
        self.assertFalse(doc[0]["valid"])
        hits = [i for i in doc[0]["issues"] if i["location"].startswith("PID-3")]
        self.assertTrue(hits, doc)
        self.assertEqual(hits[0]["code"], 101)
        self.assertEqual(hits[0]["severity"], "error")
        self.assertNotIn("12345", r.stdout.decode())

    def test_mixed_files_and_unreadable(self):
        ok = self.files.write("ok.hl7", VALID_ADT)
        self.assertEqual(run("validate", ok, "/nonexistent/y.hl7").returncode, 2)

    def test_profile_tightens_rules(self):
        ok = self.files.write("ok.hl7", VALID_ADT)
        profile = self.files.write("p.yaml", "name: site\nrequired_fields: [PID-7]\n")
        self.assertEqual(run("validate", "--profile", profile, ok).returncode, 0)
        no_dob = self.files.write("nodob.hl7", VALID_ADT.replace("|19800101|", "||"))
        r = run("validate", "--profile", profile, no_dob)
        self.assertEqual(r.returncode, 1, r.stdout.decode())
        self.assertIn("PID-7", r.stdout.decode())

    def test_bad_profile_names_file_and_line(self):
        ok = self.files.write("ok.hl7", VALID_ADT)
        profile = self.files.write("p.yaml", "name: site\nno_such_key: 1\n")
        r = run("validate", "--profile", profile, ok)
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr.decode(), r"p\.yaml:2")

    def test_batch_envelope_count_mismatch_is_reported(self):
        body = VALID_ADT.replace("\r", "\n")
        path = self.files.write("batch.hl7", "BHS|^~\\&|A\n" + body + body + "BTS|3\n")
        r = run("validate", path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("BTS-1", r.stdout.decode())


class ConfigCheckTest(unittest.TestCase):
    def test_shipped_example_is_valid(self):
        r = run("config", "check", "examples/isthmus.yaml")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn("valid", r.stdout.decode())

    def test_errors_name_file_line_and_column(self):
        files = Files()
        path = files.write("bad.yaml", "listeners:\n  - name: a\n    channel: nope\n    bogus: 1\n")
        r = run("config", "check", path)
        self.assertEqual(r.returncode, 1)
        err = r.stderr.decode() + r.stdout.decode()
        self.assertRegex(err, r"bad\.yaml:4:5: unknown key 'bogus'")
        self.assertRegex(err, r"bad\.yaml:3:\d+: listener 'a': unknown channel 'nope'")

    def test_missing_file_is_exit_2(self):
        self.assertEqual(run("config", "check", "/nonexistent/isthmus.yaml").returncode, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
