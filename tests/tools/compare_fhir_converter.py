#!/usr/bin/env python3
"""Measures how much of Microsoft FHIR-Converter's expected output our HL7 v2 -> FHIR conversion
carries, pair by pair over ../shared/corpus/fhir-converter-hl7v2/pairs.csv.

WHAT A FACT IS
  A fact is one leaf of one resource of a Bundle, as the triple

      (resourceType, path, value)

  - Resources are the Bundle's entry[].resource. The Bundle's own elements (id, type,
    timestamp, identifier) and entry.fullUrl / entry.request are transport, not facts.
  - path is the element path from the resource root, array indices removed, e.g.
    `Patient.name.given`. An element of an `extension` / `modifierExtension` array is named by
    its url, so a value stays tied to the extension that gives it meaning:
    `Patient.extension(http://hl7.org/fhir/us/core/StructureDefinition/us-core-race).extension(text).valueString`.
    A contained resource is named by its type: `Observation.contained(Organization).name`.
  - value is the JSON primitive (string, number, boolean) after normalisation (below).
  - Facts form a multiset: two Observations with status "final" are two facts, and our Bundle
    must carry both to score both.

  Not facts (ignored on both sides):
  - `id` of every resource (contained ones too), `meta.versionId`, `meta.lastUpdated`:
    identities and server bookkeeping, generated differently by every converter.
  - `text` of every resource (narrative; Microsoft's Provenance.text.div holds the conversion
    time, and upstream's own test deletes it before comparing).
  - reference values: an element holding `reference` gives the fact
    (resourceType, path.reference, "Reference(<target type>)"), the target type read from
    `Type/id`, from an absolute URL's `.../Type/id`, or from the fullUrl of the entry a
    `urn:uuid:` points to ("Reference(#contained)" for `#id`, "Reference(?)" when unresolved).
    So we score that a reference of the right kind exists there, never its id. The reference's
    other elements (display, type, identifier) are ordinary facts.

  Normalisation (what FHIR R4 says is the same value):
  - dateTime / instant with a time (`YYYY-MM-DDThh:mm:ss[.f+](Z|+hh:mm)`): converted to UTC,
    fraction without trailing zeros (`.400` -> `.4`, `.000` -> none). FHIR requires an offset
    on every time, which makes the value a point in time; Microsoft rewrites offsets to the zone
    of the machine that produced its expected files (`198908181126+0215` becomes
    `1989-08-18T14:41:00+05:30`) while we keep the message's offset (issue 4). Comparing instants
    counts both as the same fact. Dates without a time (`1980`, `1980-01`, `1980-01-01`) are
    compared as written: their precision is the value (FHIR: "2020" is not "2020-01-01").
  - Strings are trimmed (FHIR R4 §2.6.2: strings SHOULD NOT have leading or trailing
    whitespace; parsers may trim). Otherwise exact: case is significant in codes and strings.
  - Decimals keep their lexical form: `1.0` and `1` are different facts (FHIR R4: the
    precision of a decimal is significant).

  Scores: per pair, expected = number of Microsoft's facts (less intended differences), found
  = size of the multiset intersection with ours, percent = found / expected. Overall: micro
  (all facts of all pairs pooled) and macro (mean of the pairs' percents). Exit status 0 when
  the micro percent is >= --min (default 95).

INTENDED DIFFERENCES
  tests/tools/intended_differences.json lists where we differ from Microsoft on purpose. Each
  entry: {"pairs": [glob, ...]  (matched against the input's stem, e.g. "ADT-A01-*", or the
  root template, e.g. "ADT_A0?"), "path": glob over the fact's "resourceType.path",
  "value": optional exact normalised value, "ig": {"file": path under the corpus's
  v2-to-fhir-ig/, "row": 1-based CSV record
  (the spreadsheet row; header rows count), "identifier": optional v2 field the row maps},
  "why": text}. Matching facts leave the denominator and are reported per entry.

OUR BUNDLES
  By default `build/isthmus convert --ndjson --type <root template> <input>` runs per pair
  (`--isthmus PATH` picks the binary; `--cmd` replaces the command: a template with {isthmus},
  {type}, {input} and {expected} (Microsoft's file, for self-tests) split like a shell line). `--ours DIR` reads <input stem>.json or .ndjson from
  DIR instead. Every Bundle printed for an input counts (inputs hold one message each).
  `--save-ours DIR` writes what the command printed, for the schema validator.

usage: compare_fhir_converter.py [--corpus DIR] [--ours DIR | --isthmus PATH | --cmd TEMPLATE]
           [--pairs GLOB] [--details] [--json] [--min PCT] [--intended FILE] [--save-ours DIR]
           [--expected-stats]
Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_CORPUS = os.environ.get("ISTHMUS_CORPUS_DIR", os.path.join(ROOT, "..", "shared", "corpus"))
DEFAULT_INTENDED = os.path.join(HERE, "intended_differences.json")
DEFAULT_CMD = "{isthmus} convert --ndjson --type {type} {input}"

Fact = tuple  # (resourceType, path, value)

# --- facts ---------------------------------------------------------------------------------------

_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")


class _Lexical(str):
    """A JSON number kept as written (decimal precision is significant in FHIR)."""


def load_json(text: str):
    return json.loads(text, parse_float=_Lexical, parse_int=_Lexical)


def normalise(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _Lexical):
        return "number:" + str(value)
    if value is None:
        return "null"
    s = str(value).strip()
    m = _DATETIME.match(s)
    if m:
        year, month, day, hour, minute, second, frac, zone = m.groups()
        try:
            offset = datetime.timedelta(0) if zone == "Z" else (
                (1 if zone[0] == "+" else -1) *
                datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
            t = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute),
                                  int(second), tzinfo=datetime.timezone(offset))
        except ValueError:
            return s  # not a real date: compared as written
        u = t.astimezone(datetime.timezone.utc)
        frac = (frac or "").rstrip("0")
        return u.strftime("%Y-%m-%dT%H:%M:%S") + ("." + frac if frac else "") + "Z"
    return s


def _reference_target(ref: str, full_urls: dict[str, str]) -> str:
    if ref.startswith("#"):
        return "#contained"
    if ref in full_urls:
        return full_urls[ref]
    if ref.startswith("urn:"):
        return "?"
    parts = [p for p in ref.split("?")[0].split("/") if p]
    # Type/id, Type/id/_history/v, http://server/base/Type/id
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 2 and re.match(r"^[A-Z][A-Za-z]+$", parts[-2]):
        return parts[-2]
    if len(parts) == 1 and re.match(r"^[A-Z][A-Za-z]+$", parts[0]):
        return parts[0]  # conditional reference "Patient?identifier=..."
    return "?"


def _walk(node, path: str, rtype: str, full_urls, out: list, top: bool):
    if isinstance(node, dict):
        for key, value in node.items():
            if top and key in ("id", "text"):
                continue
            if top and key == "meta" and isinstance(value, dict):
                value = {k: v for k, v in value.items() if k not in ("versionId", "lastUpdated")}
            if key == "reference" and isinstance(value, str):
                out.append((rtype, path + ".reference",
                            "Reference(%s)" % _reference_target(value, full_urls)))
                continue
            if key in ("extension", "modifierExtension") and isinstance(value, list):
                for ext in value:
                    if isinstance(ext, dict):
                        sub = {k: v for k, v in ext.items() if k != "url"}
                        _walk(sub, "%s.%s(%s)" % (path, key, ext.get("url", "")), rtype, full_urls,
                              out, False)
                continue
            if key == "contained" and isinstance(value, list):
                for res in value:
                    if isinstance(res, dict):
                        _walk(res, "%s.contained(%s)" % (path, res.get("resourceType", "?")),
                              rtype, full_urls, out, True)
                continue
            _walk(value, path + "." + key, rtype, full_urls, out, False)
    elif isinstance(node, list):
        for item in node:
            _walk(item, path, rtype, full_urls, out, False)
    else:
        out.append((rtype, path, normalise(node)))


def bundle_facts(bundle) -> collections.Counter:
    """The multiset of facts of one Bundle (see the module docstring)."""
    facts: list = []
    if not isinstance(bundle, dict):
        return collections.Counter()
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
    full_urls = {}
    for e in entries:
        res = e.get("resource")
        if isinstance(res, dict) and isinstance(e.get("fullUrl"), str):
            full_urls[e["fullUrl"]] = res.get("resourceType", "?")
    for e in entries:
        res = e.get("resource")
        if isinstance(res, dict):
            rtype = str(res.get("resourceType", "?"))
            _walk(res, rtype, rtype, full_urls, facts, True)
    return collections.Counter(facts)


def facts_of_documents(docs) -> collections.Counter:
    total: collections.Counter = collections.Counter()
    for d in docs:
        total.update(bundle_facts(d))
    return total


def parse_documents(text: str) -> list:
    """One JSON document, a JSON array of them, or NDJSON."""
    text = text.lstrip("\ufeff")
    if not text.strip():
        return []
    try:
        whole = load_json(text)
        return whole if isinstance(whole, list) else [whole]
    except json.JSONDecodeError:
        return [load_json(line) for line in text.splitlines() if line.strip()]


# --- intended differences ---------------------------------------------------------------------

@dataclass
class Intended:
    pairs: list
    path: str
    value: str | None
    ig: dict
    why: str

    def matches_pair(self, stem: str, root_template: str) -> bool:
        return any(fnmatch.fnmatchcase(stem, g) or fnmatch.fnmatchcase(root_template, g)
                   for g in self.pairs)

    def matches_fact(self, fact) -> bool:
        rtype, path, value = fact
        if not fnmatch.fnmatchcase(path, self.path):
            return False
        return self.value is None or self.value == value

    def label(self) -> str:
        return "%s %s (IG %s row %s)" % (",".join(self.pairs), self.path,
                                         self.ig.get("file", "?"), self.ig.get("row", "?"))


def load_intended(path: str | None) -> list[Intended]:
    if not path or not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    out = []
    for i, e in enumerate(data.get("differences", [])):
        for key in ("pairs", "path", "ig", "why"):
            if key not in e:
                raise ValueError("%s: difference %d has no %r" % (path, i, key))
        if "file" not in e["ig"] or "row" not in e["ig"]:
            raise ValueError("%s: difference %d: ig needs file and row" % (path, i))
        pairs = e["pairs"] if isinstance(e["pairs"], list) else [e["pairs"]]
        out.append(Intended(pairs, e["path"], e.get("value"), e["ig"], e["why"]))
    return out


def check_intended_against_ig(intended: list[Intended], corpus: str) -> list[str]:
    """Problems with the IG citations (file missing, row out of range, identifier mismatch)."""
    problems = []
    for d in intended:
        f = os.path.join(corpus, "v2-to-fhir-ig", d.ig["file"])
        if not os.path.exists(f):
            problems.append("%s: no IG file %s" % (d.label(), f))
            continue
        with open(f, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
        row = d.ig["row"]
        if not isinstance(row, int) or not 1 <= row <= len(rows):
            problems.append("%s: row %r outside 1..%d" % (d.label(), row, len(rows)))
            continue
        ident = d.ig.get("identifier")
        if ident and ident not in rows[row - 1]:
            problems.append("%s: row %d does not mention %s: %s" % (d.label(), row, ident,
                                                                 rows[row - 1][:3]))
    return problems


# --- pairs and our output ------------------------------------------------------------------------

@dataclass
class Pair:
    input: str          # path relative to fhir-converter-hl7v2/
    root_template: str
    expected: str       # path relative to fhir-converter-hl7v2/, "" when none

    @property
    def stem(self) -> str:
        return os.path.splitext(os.path.basename(self.input))[0]


def load_pairs(corpus: str) -> list[Pair]:
    with open(os.path.join(corpus, "fhir-converter-hl7v2", "pairs.csv"), encoding="utf-8",
              newline="") as f:
        return [Pair(r["input"], r["root_template"], r["expected"]) for r in csv.DictReader(f)]


def run_ours(pair: Pair, corpus: str, args) -> tuple[list, str | None, str]:
    """Our Bundles for a pair: (documents, error, raw text)."""
    if args.ours:
        for ext in (".json", ".ndjson"):
            p = os.path.join(args.ours, pair.stem + ext)
            if os.path.exists(p):
                with open(p, encoding="utf-8") as f:
                    raw = f.read()
                try:
                    return parse_documents(raw), None, raw
                except json.JSONDecodeError as e:
                    return [], "%s: not JSON: %s" % (p, e), raw
        return [], "no %s.json or .ndjson in %s" % (pair.stem, args.ours), ""
    input_path = os.path.join(corpus, "fhir-converter-hl7v2", pair.input)
    expected_path = os.path.join(corpus, "fhir-converter-hl7v2", pair.expected)
    cmd = [part.format(isthmus=args.isthmus, type=pair.root_template, input=input_path,
                       expected=expected_path)
           for part in shlex.split(args.cmd)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=args.timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [], "%s: %s" % (cmd[0], e), ""
    raw = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        return [], "exit %d: %s" % (proc.returncode, err[-1] if err else ""), raw
    try:
        return parse_documents(raw), None, raw
    except json.JSONDecodeError as e:
        return [], "output is not JSON/NDJSON: %s" % e, raw


# --- comparing -----------------------------------------------------------------------------------

@dataclass
class PairResult:
    pair: Pair
    expected: int = 0
    found: int = 0
    intended: int = 0            # expected facts excluded as intended differences
    error: str | None = None
    missing: collections.Counter = field(default_factory=collections.Counter)
    intended_hits: collections.Counter = field(default_factory=collections.Counter)

    @property
    def percent(self) -> float:
        return 100.0 * self.found / self.expected if self.expected else 100.0


def compare(expected: collections.Counter, ours: collections.Counter, pair: Pair,
            intended: list[Intended]) -> PairResult:
    r = PairResult(pair)
    rules = [d for d in intended if d.matches_pair(pair.stem, pair.root_template)]
    for fact, n in expected.items():
        rule = next((d for d in rules if d.matches_fact(fact)), None)
        if rule is not None:
            r.intended += n
            r.intended_hits[rule.label()] += n
            continue
        got = min(n, ours.get(fact, 0))
        r.expected += n
        r.found += got
        if got < n:
            r.missing[fact] = n - got
    return r


def group_missing(missing: collections.Counter) -> dict:
    """{resourceType: {path: (count, [example values])}}, largest first."""
    by: dict = collections.defaultdict(lambda: collections.defaultdict(list))
    for (rtype, path, value), n in missing.items():
        by[rtype][path].extend([value] * n)
    out = {}
    for rtype in sorted(by, key=lambda t: -sum(len(v) for v in by[t].values())):
        paths = by[rtype]
        out[rtype] = {p: (len(v), list(dict.fromkeys(v))[:3])
                      for p, v in sorted(paths.items(), key=lambda kv: (-len(kv[1]), kv[0]))}
    return out


def expected_stats(corpus: str, pairs: list[Pair]) -> dict:
    """Facts per resource type and path over all of Microsoft's expected Bundles."""
    per_type: dict = collections.defaultdict(collections.Counter)
    for p in pairs:
        if not p.expected:
            continue
        with open(os.path.join(corpus, "fhir-converter-hl7v2", p.expected), encoding="utf-8-sig") as f:
            facts = bundle_facts(load_json(f.read()))
        for (rtype, path, _), n in facts.items():
            per_type[rtype][path] += n
    return per_type


# --- main ----------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=DEFAULT_CORPUS, help="shared corpus dir (default %(default)s)")
    ap.add_argument("--ours", help="read our Bundles from DIR/<input stem>.json|.ndjson")
    ap.add_argument("--isthmus", default=os.path.join(ROOT, "build", "isthmus"),
                    help="isthmus binary (default %(default)s)")
    ap.add_argument("--cmd", default=DEFAULT_CMD,
                    help="command per pair; {isthmus} {type} {input} {expected} are replaced (default %(default)r)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds per command")
    ap.add_argument("--pairs", action="append", help="only pairs whose input stem or template matches GLOB")
    ap.add_argument("--intended", default=DEFAULT_INTENDED, help="intended differences (JSON)")
    ap.add_argument("--details", action="store_true", help="list missing facts per pair")
    ap.add_argument("--json", action="store_true", help="print a JSON summary instead of the table")
    ap.add_argument("--min", type=float, default=95.0, help="pass when the micro percent >= MIN")
    ap.add_argument("--save-ours", metavar="DIR", help="write each pair's output to DIR/<stem>.ndjson")
    ap.add_argument("--expected-stats", action="store_true",
                    help="print the fact paths of Microsoft's Bundles ranked per resource type, and exit")
    args = ap.parse_args(argv)

    if not os.path.exists(os.path.join(args.corpus, "fhir-converter-hl7v2", "pairs.csv")):
        print("compare_fhir_converter: no corpus at %s (set --corpus or ISTHMUS_CORPUS_DIR)"
              % args.corpus, file=sys.stderr)
        return 2
    pairs = [p for p in load_pairs(args.corpus)
             if not args.pairs or any(fnmatch.fnmatchcase(p.stem, g) or
                                      fnmatch.fnmatchcase(p.root_template, g) for g in args.pairs)]

    if args.expected_stats:
        stats = expected_stats(args.corpus, pairs)
        if args.json:
            json.dump({t: dict(c.most_common()) for t, c in stats.items()}, sys.stdout, indent=1)
            print()
            return 0
        for rtype, c in sorted(stats.items(), key=lambda kv: -sum(kv[1].values())):
            print("%s  %d facts" % (rtype, sum(c.values())))
            for path, n in c.most_common():
                print("  %6d  %s" % (n, path))
        return 0

    try:
        intended = load_intended(args.intended)
    except (ValueError, json.JSONDecodeError) as e:
        print("compare_fhir_converter: %s" % e, file=sys.stderr)
        return 2
    if args.save_ours:
        os.makedirs(args.save_ours, exist_ok=True)

    results: list[PairResult] = []
    skipped = []
    for p in pairs:
        if not p.expected:
            skipped.append(p)
            continue
        with open(os.path.join(args.corpus, "fhir-converter-hl7v2", p.expected), encoding="utf-8-sig") as f:
            expected = bundle_facts(load_json(f.read()))
        docs, error, raw = run_ours(p, args.corpus, args)
        if args.save_ours and raw:
            with open(os.path.join(args.save_ours, p.stem + ".ndjson"), "w", encoding="utf-8") as f:
                f.write(raw)
        r = compare(expected, facts_of_documents(docs), p, intended)
        r.error = error
        results.append(r)

    total_expected = sum(r.expected for r in results)
    total_found = sum(r.found for r in results)
    micro = 100.0 * total_found / total_expected if total_expected else 0.0
    macro = sum(r.percent for r in results) / len(results) if results else 0.0
    passed = bool(results) and micro >= args.min

    if args.json:
        out = {
            "pairs": len(results),
            "pairs_without_expected": [p.input for p in skipped],
            "facts_expected": total_expected,
            "facts_found": total_found,
            "micro_percent": round(micro, 2),
            "macro_percent": round(macro, 2),
            "intended_facts": sum(r.intended for r in results),
            "min_percent": args.min,
            "passed": passed,
            "per_pair": [{
                "input": r.pair.input, "root_template": r.pair.root_template,
                "expected": r.expected, "found": r.found, "percent": round(r.percent, 2),
                "intended": r.intended, "error": r.error,
                **({"missing": {t: {p: {"count": c, "examples": ex} for p, (c, ex) in paths.items()}
                                for t, paths in group_missing(r.missing).items()},
                    "intended_differences": dict(r.intended_hits)} if args.details else {}),
            } for r in results],
        }
        json.dump(out, sys.stdout, indent=1)
        print()
    else:
        print("%-34s %-9s %8s %8s %7s %8s  %s" % ("pair", "template", "expected", "found", "%",
                                                 "intended", "error"))
        for r in results:
            print("%-34s %-9s %8d %8d %6.1f%% %8d  %s" % (
                r.pair.stem, r.pair.root_template, r.expected, r.found, r.percent, r.intended,
                r.error or ""))
            if args.details and (r.missing or r.intended_hits):
                for rtype, paths in group_missing(r.missing).items():
                    print("    missing %s: %d" % (rtype, sum(c for c, _ in paths.values())))
                    for path, (count, examples) in paths.items():
                        print("      %4d  %s  e.g. %s" % (count, path,
                                                         " | ".join(repr(e) for e in examples)))
                for label, n in r.intended_hits.items():
                    print("    intended difference: %d facts: %s" % (n, label))
        for p in skipped:
            print("%-34s %-9s  (no expected Bundle upstream: not scored)" % (p.stem, p.root_template))
        print("overall: %d/%d facts = %.2f%% (micro), %.2f%% mean over %d pairs (macro); "
              "%d facts excluded as intended differences; min %.1f%%: %s" % (
                  total_found, total_expected, micro, macro, len(results),
                  sum(r.intended for r in results), args.min, "PASS" if passed else "FAIL"))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
