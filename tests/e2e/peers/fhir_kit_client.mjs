// A real FHIR client (npm fhir-kit-client, written by others) against isthmus's /fhir API.
//   usage: node fhir_kit_client.mjs <base url, e.g. http://127.0.0.1:8080/fhir>
// Runs the scenario below with node:assert; prints one line per step and exits non-zero at the
// first failed check (the message says what differed).
import assert from 'node:assert/strict';
import { Client } from 'fhir-kit-client';

const baseUrl = process.argv[2];
const client = new Client({ baseUrl });
const step = (name) => console.log(`ok ${name}`);

// An error response: its status and its OperationOutcome.
async function failure(promise) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e.response, `not an HTTP error: ${e}`);
    return { status: e.response.status, data: e.response.data };
  }
  assert.fail('expected an error response');
}

function expectOutcome(err, status) {
  assert.equal(err.status, status);
  assert.equal(err.data.resourceType, 'OperationOutcome', JSON.stringify(err.data));
  assert.ok(err.data.issue?.[0]?.code, 'issue code');
}

const cap = await client.capabilityStatement();
assert.equal(cap.resourceType, 'CapabilityStatement');
assert.equal(cap.fhirVersion, '4.0.1');
assert.ok(cap.rest[0].resource.some((r) => r.type === 'Patient'));
step('metadata');

// CRUD
const created = await client.create({
  resourceType: 'Patient',
  body: { resourceType: 'Patient', name: [{ family: 'Doe', given: ['Jane'] }], gender: 'female' },
});
assert.ok(created.id);
assert.equal(created.meta.versionId, '1');
const id = created.id;
const read = await client.read({ resourceType: 'Patient', id });
assert.deepEqual(read, created);
step('create and read');

const v2 = await client.update({
  resourceType: 'Patient', id, body: { ...read, gender: 'other' },
  options: { headers: { 'If-Match': 'W/"1"' } },
});
assert.equal(v2.meta.versionId, '2');
assert.equal(v2.gender, 'other');
step('update with If-Match');

const conflict = await failure(client.update({
  resourceType: 'Patient', id, body: { ...read, gender: 'male' },
  options: { headers: { 'If-Match': 'W/"1"' } },
}));
expectOutcome(conflict, 412);
assert.equal((await client.read({ resourceType: 'Patient', id })).gender, 'other');
step('stale If-Match is 412');

const v1 = await client.vread({ resourceType: 'Patient', id, version: '1' });
assert.equal(v1.gender, 'female');
step('vread');

const asCreate = await client.update({
  resourceType: 'Patient', id: 'chosen-id-1', body: { resourceType: 'Patient', id: 'chosen-id-1' },
});
assert.equal(asCreate.meta.versionId, '1');
step('update as create');

await client.delete({ resourceType: 'Patient', id });
expectOutcome(await failure(client.read({ resourceType: 'Patient', id })), 410);
step('delete then 410');

const history = await client.history({ resourceType: 'Patient', id });
assert.equal(history.type, 'history');
assert.deepEqual(history.entry.map((e) => e.request.method), ['DELETE', 'PUT', 'POST']);
assert.equal(history.entry[1].resource.meta.versionId, '2');
step('instance history');

// Paging through type history to the end with the client's nextPage.
for (let i = 0; i < 5; i++) {
  await client.create({ resourceType: 'Observation', body: {
    resourceType: 'Observation', status: 'final', code: { text: `n${i}` }, valueQuantity: { value: 1.50 } } });
}
// A write between pages (a newer version than the first page's position) is not seen by the
// later pages, and no version is skipped or repeated: the next link is a position in the write
// order, not an offset.
let page = await client.request('Observation/_history?_count=2');
const seen = [];
const updated = {};
let late = false;
while (page) {
  for (const e of page.entry) {
    seen.push(e.resource.code.text);
    updated[e.resource.code.text] = e.resource.meta.lastUpdated;
  }
  if (!late) {
    await client.create({ resourceType: 'Observation', body: {
      resourceType: 'Observation', status: 'final', code: { text: 'late' } } });
    late = true;
  }
  page = await client.nextPage({ bundle: page });
}
assert.deepEqual(seen, ['n4', 'n3', 'n2', 'n1', 'n0']);
const system = await client.history();
assert.ok(system.entry.length >= 9);
// _since (http.html#history): the versions last updated at or after that instant. From n3's
// lastUpdated: late, n4 and n3 first (newest first), and n0 only if it shared n3's millisecond.
const since = updated.n3;
const recent = await client.request(`Observation/_history?_since=${encodeURIComponent(since)}`);
const recentCodes = recent.entry.map((e) => e.resource.code.text);
assert.deepEqual(recentCodes.slice(0, 3), ['late', 'n4', 'n3']);
if (updated.n0 < since) assert.ok(!recentCodes.includes('n0'), recentCodes.join());
assert.ok(recent.entry.every((e) => e.resource.meta.lastUpdated >= since));
step('type history paged to the end under a concurrent write, system history, _since');

// Transaction with urn:uuid references.
const tx = await client.transaction({ body: {
  resourceType: 'Bundle', type: 'transaction', entry: [
    { fullUrl: 'urn:uuid:0c3d7b4e-9f5c-4a55-8b9e-2b6a1f1e0a01',
      resource: { resourceType: 'Patient', name: [{ family: 'Tx' }] },
      request: { method: 'POST', url: 'Patient' } },
    { fullUrl: 'urn:uuid:0c3d7b4e-9f5c-4a55-8b9e-2b6a1f1e0a02',
      resource: { resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' },
                  subject: { reference: 'urn:uuid:0c3d7b4e-9f5c-4a55-8b9e-2b6a1f1e0a01' } },
      request: { method: 'POST', url: 'Encounter' } },
    { resource: { resourceType: 'Observation', id: 'tx-obs', status: 'final', code: { text: 'x' },
                  subject: { reference: 'urn:uuid:0c3d7b4e-9f5c-4a55-8b9e-2b6a1f1e0a01' },
                  encounter: { reference: 'urn:uuid:0c3d7b4e-9f5c-4a55-8b9e-2b6a1f1e0a02' } },
      request: { method: 'PUT', url: 'Observation/tx-obs' } },
  ] } });
assert.equal(tx.type, 'transaction-response');
assert.deepEqual(tx.entry.map((e) => e.response.status), ['201 Created', '201 Created', '201 Created']);
const patientId = tx.entry[0].response.location.split('/')[1];
const encounterId = tx.entry[1].response.location.split('/')[1];
const obs = await client.read({ resourceType: 'Observation', id: 'tx-obs' });
assert.equal(obs.subject.reference, `Patient/${patientId}`);
assert.equal(obs.encounter.reference, `Encounter/${encounterId}`);
const enc = await client.read({ resourceType: 'Encounter', id: encounterId });
assert.equal(enc.subject.reference, `Patient/${patientId}`);
step('transaction with urn:uuid references');

// A transaction with one bad entry keeps nothing.
const badTx = await failure(client.transaction({ body: {
  resourceType: 'Bundle', type: 'transaction', entry: [
    { resource: { resourceType: 'Patient', id: 'never-stored' }, request: { method: 'PUT', url: 'Patient/never-stored' } },
    { resource: { resourceType: 'Patient', id: 'tx-obs' }, request: { method: 'PUT', url: 'Observation/tx-obs' } },
  ] } }));
expectOutcome(badTx, 400);
expectOutcome(await failure(client.read({ resourceType: 'Patient', id: 'never-stored' })), 404);
step('failed transaction rolls back');

// A batch applies each entry on its own (http.html#transaction): a failing entry gets its
// status and an OperationOutcome, the others are applied and answered in request order.
const batch = await client.batch({ body: {
  resourceType: 'Bundle', type: 'batch', entry: [
    { resource: { resourceType: 'Patient', name: [{ family: 'Batch' }] }, request: { method: 'POST', url: 'Patient' } },
    { resource: { resourceType: 'Patient', id: 'tx-obs' }, request: { method: 'PUT', url: 'Observation/tx-obs' } },
    { request: { method: 'GET', url: `Patient/${patientId}` } },
  ] } });
assert.equal(batch.type, 'batch-response');
assert.match(batch.entry[0].response.status, /^201/);
assert.match(batch.entry[1].response.status, /^4\d\d/);
assert.equal(batch.entry[1].response.outcome?.resourceType, 'OperationOutcome');
assert.match(batch.entry[2].response.status, /^200/);
assert.equal(batch.entry[2].resource.id, patientId);
const batchPatient = await client.read({ resourceType: 'Patient', id: batch.entry[0].response.location.split('/')[1] });
assert.equal(batchPatient.name[0].family, 'Batch');
assert.equal((await client.read({ resourceType: 'Observation', id: 'tx-obs' })).resourceType, 'Observation');
step('batch: entries apart');

// Errors are OperationOutcomes.
expectOutcome(await failure(client.read({ resourceType: 'Patient', id: 'no-such-id' })), 404);
expectOutcome(await failure(client.read({ resourceType: 'NotAType', id: 'x' })), 404);
expectOutcome(await failure(client.request('Patient', { method: 'POST', body: '{"resourceType": ', options: { headers: { 'content-type': 'application/fhir+json' } } })), 400);
expectOutcome(await failure(client.search({
  resourceType: 'Patient', searchParams: { nonsense: 'Doe' },
  options: { headers: { Prefer: 'handling=strict' } } })), 400);
expectOutcome(await failure(client.request('metadata?_format=xml')), 415);
const byId = await client.search({ resourceType: 'Patient', searchParams: { _id: patientId } });
assert.equal(byId.total, 1);
step('errors as OperationOutcome; search by _id');
console.log('done');
