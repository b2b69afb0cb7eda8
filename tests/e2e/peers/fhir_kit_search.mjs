// FHIR search through a real client (npm fhir-kit-client) against isthmus's /fhir API: every
// search parameter type, modifiers and prefixes, POST _search, _include/_revinclude, _sort,
// _total, _summary=count, lenient/strict handling, and paging to the end with nextPage.
//   usage: node fhir_kit_search.mjs <base url, e.g. http://127.0.0.1:8080/fhir>
import assert from 'node:assert/strict';
import { Client } from 'fhir-kit-client';

const client = new Client({ baseUrl: process.argv[2] });
const step = (name) => console.log(`ok ${name}`);
const ids = (bundle, mode = 'match') =>
  (bundle.entry ?? []).filter((e) => e.search?.mode === mode).map((e) => e.resource.id).sort();
const search = (resourceType, searchParams, options) =>
  client.search({ resourceType, searchParams, options });

// Data: one transaction, urn:uuid references rewritten by the server.
const tx = await client.transaction({ body: {
  resourceType: 'Bundle', type: 'transaction', entry: [
    { fullUrl: 'urn:uuid:00000000-0000-0000-0000-00000000000a', request: { method: 'PUT', url: 'Organization/s-org' },
      resource: { resourceType: 'Organization', id: 's-org', name: 'Hôpital Général' } },
    { request: { method: 'PUT', url: 'Patient/s-p1' }, resource: {
      resourceType: 'Patient', id: 's-p1', active: true, gender: 'female', birthDate: '1980-02-14',
      identifier: [{ system: 'urn:mrn', value: 'MRN1' }], name: [{ family: 'Doe', given: ['Jane'] }],
      managingOrganization: { reference: 'Organization/s-org' } } },
    { request: { method: 'PUT', url: 'Patient/s-p2' }, resource: {
      resourceType: 'Patient', id: 's-p2', gender: 'male', birthDate: '1980',
      identifier: [{ system: 'urn:other', value: 'MRN1' }], name: [{ family: 'Döe', given: ['John'] }] } },
    { request: { method: 'PUT', url: 'Patient/s-p3' }, resource: {
      resourceType: 'Patient', id: 's-p3', gender: 'female', birthDate: '1995-07-01',
      identifier: [{ value: 'NOSYS' }],
      meta: { tag: [{ system: 'urn:tags', code: 'vip' }], security: [{ system: 'urn:sec', code: 'R' }],
              profile: ['http://example.org/fhir/StructureDefinition/p3'] },
      name: [{ family: 'Smith', given: ['Ann'] }] } },
    { request: { method: 'POST', url: 'Observation' }, resource: {
      resourceType: 'Observation', status: 'final', subject: { reference: 'Patient/s-p1' },
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
      effectiveDateTime: '2024-01-10T08:00:00Z',
      valueQuantity: { value: 72, system: 'http://unitsofmeasure.org', code: '/min' } } },
    { request: { method: 'POST', url: 'Observation' }, resource: {
      resourceType: 'Observation', status: 'final', subject: { reference: 'Patient/s-p2' },
      code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }] },
      effectiveDateTime: '2024-02-01',
      valueQuantity: { value: 81000, system: 'http://unitsofmeasure.org', code: 'g' } } },
    { request: { method: 'PUT', url: 'RiskAssessment/s-r1' }, resource: {
      resourceType: 'RiskAssessment', id: 's-r1', status: 'final', subject: { reference: 'Patient/s-p1' },
      prediction: [{ probabilityDecimal: 0.8 }] } },
    { request: { method: 'PUT', url: 'ValueSet/s-vs' }, resource: {
      resourceType: 'ValueSet', id: 's-vs', status: 'active', url: 'http://example.org/fhir/ValueSet/colors' } },
  ] } });
assert.equal(tx.type, 'transaction-response');
step('load');

// string
assert.deepEqual(ids(await search('Patient', { family: 'doe' })), ['s-p1', 's-p2']);
assert.deepEqual(ids(await search('Patient', { 'family:exact': 'Döe' })), ['s-p2']);
assert.deepEqual(ids(await search('Patient', { 'name:contains': 'mit' })), ['s-p3']);
assert.deepEqual(ids(await search('Organization', { name: 'hopital' })), ['s-org']);
step('string');
// token
assert.deepEqual(ids(await search('Patient', { identifier: 'MRN1' })), ['s-p1', 's-p2']);
assert.deepEqual(ids(await search('Patient', { identifier: 'urn:mrn|MRN1' })), ['s-p1']);
assert.deepEqual(ids(await search('Patient', { identifier: 'urn:other|' })), ['s-p2']);
// |code: a token without a system (search.html#token); a system|code with that value is not it.
assert.deepEqual(ids(await search('Patient', { identifier: '|NOSYS' })), ['s-p3']);
assert.deepEqual(ids(await search('Patient', { identifier: 'NOSYS' })), ['s-p3']);
assert.equal((await search('Patient', { identifier: 'urn:mrn|NOSYS' })).total, 0);
assert.equal((await search('Patient', { identifier: '|MRN1' })).total, 0);
assert.deepEqual(ids(await search('Patient', { 'gender:not': 'female', _id: 's-p1,s-p2,s-p3' })), ['s-p2']);
assert.deepEqual(ids(await search('Patient', { active: true })), ['s-p1']);
assert.equal((await search('Observation', { 'code:text': 'weight' })).entry.length, 1);
assert.equal((await search('Observation', { code: 'http://loinc.org|8867-4,29463-7' })).entry.length, 2);
step('token');
// date
assert.deepEqual(ids(await search('Patient', { birthdate: '1980' })), ['s-p1', 's-p2']);
assert.deepEqual(ids(await search('Patient', { birthdate: 'gt1990' })), ['s-p3']);
// Ranges: 1980 (the whole year) reaches beyond both ends of February, so ge and le match it;
// eq asks for containment.
assert.deepEqual(ids(await search('Patient', { birthdate: ['ge1980-02-01', 'le1980-02-28'] })), ['s-p1', 's-p2']);
assert.deepEqual(ids(await search('Patient', { birthdate: 'eq1980-02' })), ['s-p1']);
assert.deepEqual(ids(await search('Patient', { birthdate: 'sa1980-12-31', _id: 's-p1,s-p2,s-p3' })), ['s-p3']);
assert.equal((await search('Observation', { date: '2024-01' })).entry.length, 1);
assert.equal((await search('Observation', { date: 'eb2024-01-31' })).entry.length, 1);
step('date');
// number and quantity
assert.deepEqual(ids(await search('RiskAssessment', { probability: 'gt0.5' })), ['s-r1']);
assert.deepEqual(ids(await search('RiskAssessment', { probability: '0.8' })), ['s-r1']);
assert.equal((await search('RiskAssessment', { probability: 'lt0.5' })).total, 0);
assert.equal((await search('Observation', { 'value-quantity': 'gt70' })).entry.length, 2);
assert.equal((await search('Observation', { 'value-quantity': '81|http://unitsofmeasure.org|kg' })).entry.length, 1);
step('number and quantity');
// reference
assert.equal((await search('Observation', { subject: 'Patient/s-p1' })).entry.length, 1);
assert.equal((await search('Observation', { 'subject:Patient': 's-p2' })).entry.length, 1);
assert.equal((await search('Observation', { 'subject.name': 'jane' })).entry.length, 1);
assert.deepEqual(ids(await search('Patient', { '_has:Observation:subject:code': '29463-7' })), ['s-p2']);
assert.deepEqual(ids(await search('Patient', { organization: 's-org' })), ['s-p1']);
step('reference, chained, _has');
// uri and :missing
assert.deepEqual(ids(await search('ValueSet', { url: 'http://example.org/fhir/ValueSet/colors' })), ['s-vs']);
assert.deepEqual(ids(await search('ValueSet', { 'url:below': 'http://example.org/fhir' })), ['s-vs']);
assert.deepEqual(ids(await search('Patient', { 'organization:missing': false })), ['s-p1']);
assert.deepEqual(ids(await search('Patient', { 'active:missing': true, _id: 's-p1,s-p2,s-p3' })), ['s-p2', 's-p3']);
step('uri and :missing');
// composite (search.html#composite): code and value of the same Observation, parts joined by $.
// The heart rate is 72 /min: gt70 matches, lt70 does not; the weight's code with gt70 does not
// match the heart rate's value (the parts must hold together).
assert.equal((await search('Observation', { 'code-value-quantity': 'http://loinc.org|8867-4$gt70' })).total, 1);
assert.equal((await search('Observation', { 'code-value-quantity': 'http://loinc.org|8867-4$lt70' })).total, 0);
assert.equal((await search('Observation', { 'code-value-quantity': 'http://loinc.org|29463-7$lt80000' })).total, 0);
step('composite');
// _include, _revinclude, _sort, _total, _summary, POST _search
const inc = await search('Observation', { code: '8867-4', _include: 'Observation:subject' });
assert.deepEqual(ids(inc, 'include'), ['s-p1']);
const rev = await search('Patient', { _id: 's-p1', _revinclude: 'Observation:subject' });
assert.equal(rev.entry.filter((e) => e.search.mode === 'include').length, 1);
const sorted = await search('Patient', { _id: 's-p1,s-p2,s-p3', _sort: '-birthdate,family' });
// Descending dates sort by the end of their range: 1980 (the whole year) after 1980-02-14.
assert.deepEqual(sorted.entry.map((e) => e.resource.id), ['s-p3', 's-p2', 's-p1']);
assert.equal((await search('Patient', { family: 'doe', _summary: 'count' })).total, 2);
assert.equal((await search('Patient', { family: 'doe', _count: 1, _total: 'accurate' })).total, 2);
const posted = await search('Patient', { family: 'doe', gender: 'male' }, { postSearch: true });
assert.deepEqual(ids(posted), ['s-p2']);
step('_include, _revinclude, _sort, _total, _summary, POST _search');
// More prefixes (search.html#prefix): ne is "the resource's range is not within the value's":
// s-p1's day is, s-p2's whole year 1980 is not. ap near 1995-07-01 (the server's tolerance is a
// fraction of the distance to now, a few years here) finds s-p3, not the 1980s.
const three = 's-p1,s-p2,s-p3';
assert.deepEqual(ids(await search('Patient', { birthdate: 'ne1980-02-14', _id: three })), ['s-p2', 's-p3']);
assert.deepEqual(ids(await search('Patient', { birthdate: 'ap1995-07-01', _id: three })), ['s-p3']);
// uri :above: the stored url is a prefix of (or equal to) the value, at a path boundary.
assert.deepEqual(ids(await search('ValueSet', { 'url:above': 'http://example.org/fhir/ValueSet/colors/v2' })), ['s-vs']);
assert.equal((await search('ValueSet', { 'url:above': 'http://example.org/other' })).total, 0);
// Common parameters on meta: _tag, _security (tokens), _profile (uri), _lastUpdated (date).
assert.deepEqual(ids(await search('Patient', { _tag: 'urn:tags|vip' })), ['s-p3']);
assert.deepEqual(ids(await search('Patient', { _security: 'urn:sec|R' })), ['s-p3']);
assert.deepEqual(ids(await search('Patient', { _profile: 'http://example.org/fhir/StructureDefinition/p3' })), ['s-p3']);
assert.deepEqual(ids(await search('Patient', { _lastUpdated: 'gt2000-01-01', _id: three })), ['s-p1', 's-p2', 's-p3']);
assert.equal((await search('Patient', { _lastUpdated: 'lt2000-01-01', _id: three })).total, 0);
// _summary=count with _include: the count of matches only, no entries (included or not).
const counted = await search('Observation', { code: '8867-4', _include: 'Observation:subject', _summary: 'count' });
assert.equal(counted.total, 1);
assert.equal((counted.entry ?? []).length, 0);
step('ne and ap, uri :above, _tag, _security, _profile, _lastUpdated, _summary=count with _include');
// unknown parameters: lenient (default) and strict
const lenient = await search('Patient', { family: 'smith', nonsense: 'x' });
assert.deepEqual(ids(lenient), ['s-p3']);
assert.ok(lenient.entry.some((e) => e.search.mode === 'outcome' && e.resource.resourceType === 'OperationOutcome'));
try {
  await search('Patient', { nonsense: 'x' }, { headers: { Prefer: 'handling=strict' } });
  assert.fail('strict handling accepted an unknown parameter');
} catch (e) {
  assert.equal(e.response?.status, 400, String(e));
}
step('handling lenient and strict');

// Paging to the end while another writer adds resources: every original once.
const tag = `page-${Date.now()}`;
for (let i = 0; i < 23; i++) {
  await client.create({ resourceType: 'Patient', body: {
    resourceType: 'Patient', meta: { tag: [{ system: 'urn:test', code: tag }] }, name: [{ family: `Page${i}` }] } });
}
let page = await search('Patient', { _tag: `urn:test|${tag}`, _count: 5, _sort: 'family' });
const seen = [];
let pages = 0;
while (page) {
  seen.push(...page.entry.filter((e) => e.search.mode === 'match').map((e) => e.resource.name[0].family));
  pages += 1;
  // A concurrent writer: matching resources that sort before the position (never seen) and a
  // new version of one already seen (not repeated).
  await client.create({ resourceType: 'Patient', body: {
    resourceType: 'Patient', meta: { tag: [{ system: 'urn:test', code: tag }] }, name: [{ family: `A${pages}` }] } });
  const first = page.entry[0].resource;
  await client.update({ resourceType: 'Patient', id: first.id, body: { ...first, active: true } });
  page = await client.nextPage({ bundle: page });
}
assert.equal(pages, 5);
assert.equal(seen.length, 23);
assert.equal(new Set(seen).size, 23);
assert.deepEqual(seen, [...seen].sort());
step('paging to the end');
console.log('done');
