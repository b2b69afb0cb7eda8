// npm fhir-kit-client (written by others) against isthmus's /fhir: the interactions of issue #5
// beyond CRUD: conditional create/update/delete, JSON Patch, conditional references in a
// transaction, Patient/{id}/$everything paged with nextPage, _summary and _elements.
//   usage: node fhir_kit_rest.mjs <base url, e.g. http://127.0.0.1:8080/fhir>
// Prints one line per step; exits non-zero at the first failed check.
import assert from 'node:assert/strict';
import { Client } from 'fhir-kit-client';

const client = new Client({ baseUrl: process.argv[2] });
const step = (name) => console.log(`ok ${name}`);

async function failure(promise) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e.response, `not an HTTP error: ${e}`);
    return { status: e.response.status, data: e.response.data };
  }
  assert.fail('expected an error response');
}

const mrn = (v) => ({ system: 'urn:e2e:mrn', value: v });
const patient = { resourceType: 'Patient', identifier: [mrn('kit-1')], gender: 'female',
                  name: [{ family: 'Kit' }], maritalStatus: { text: 'M' } };

// Conditional create: the second call returns the first resource and writes nothing.
const ifNoneExist = { headers: { 'If-None-Exist': 'identifier=urn:e2e:mrn|kit-1' } };
const first = await client.create({ resourceType: 'Patient', body: patient, options: ifNoneExist });
const again = await client.create({ resourceType: 'Patient', body: patient, options: ifNoneExist });
assert.equal(again.id, first.id);
assert.equal(again.meta.versionId, '1');
step('conditional create');

// Conditional update by search parameters: one match, updated in place.
const updated = await client.update({
  resourceType: 'Patient', searchParams: { identifier: 'urn:e2e:mrn|kit-1' },
  body: { ...patient, active: true },
});
assert.equal(updated.id, first.id);
assert.equal(updated.meta.versionId, '2');
step('conditional update');

// JSON Patch; a failed test is 422 with an OperationOutcome.
const patched = await client.patch({
  resourceType: 'Patient', id: first.id,
  jsonPatch: [{ op: 'test', path: '/active', value: true },
              { op: 'add', path: '/name/0/given', value: ['Ada'] }],
});
assert.deepEqual(patched.name[0].given, ['Ada']);
assert.equal(patched.meta.versionId, '3');
const failedTest = await failure(client.patch({
  resourceType: 'Patient', id: first.id, jsonPatch: [{ op: 'test', path: '/active', value: false }],
}));
assert.equal(failedTest.status, 422);
assert.equal(failedTest.data.resourceType, 'OperationOutcome');
step('patch');

// A transaction whose Observations point at the patient by a conditional reference.
const tx = await client.transaction({
  body: {
    resourceType: 'Bundle', type: 'transaction',
    entry: [1, 2, 3].map((i) => ({
      resource: { resourceType: 'Observation', status: 'final', code: { text: `obs ${i}` },
                  subject: { reference: 'Patient?identifier=urn:e2e:mrn|kit-1' } },
      request: { method: 'POST', url: 'Observation' },
    })),
  },
});
assert.equal(tx.entry.length, 3);
const obs = await client.read({ resourceType: 'Observation',
                                id: tx.entry[0].response.location.split('/')[1] });
assert.equal(obs.subject.reference, `Patient/${first.id}`);
step('conditional reference in a transaction');

// $everything by GET, paged to the end with nextPage; and by POST with a Parameters body.
let page = await client.operation({ name: '$everything', resourceType: 'Patient', id: first.id,
                                    method: 'GET', input: { _count: 2 } });
assert.equal(page.total, 4);
const seen = [];
for (;;) {
  seen.push(...page.entry.map((e) => `${e.resource.resourceType}/${e.resource.id}`));
  if (!page.link.some((l) => l.relation === 'next')) break;
  page = await client.nextPage({ bundle: page });
}
assert.equal(seen.length, 4);
assert.equal(new Set(seen).size, 4);
assert.ok(seen.includes(`Patient/${first.id}`));
const onlyObs = await client.operation({
  name: '$everything', resourceType: 'Patient', id: first.id,
  input: { resourceType: 'Parameters', parameter: [{ name: '_type', valueCode: 'Observation' }] },
});
assert.equal(onlyObs.entry.length, 3);
step('$everything');

// _summary and _elements.
const summary = await client.httpClient.get(`Patient/${first.id}?_summary=true`);
assert.equal(summary.maritalStatus, undefined);
assert.equal(summary.gender, 'female');
assert.ok(summary.meta.tag.some((t) => t.code === 'SUBSETTED'));
const elements = await client.search({ resourceType: 'Patient',
                                       searchParams: { _id: first.id, _elements: 'gender' } });
assert.equal(elements.entry[0].resource.name, undefined);
assert.equal(elements.entry[0].resource.gender, 'female');
step('_summary and _elements');

// Conditional delete: several matches are 412; one is deleted.
await client.create({ resourceType: 'Patient', body: { ...patient, identifier: [mrn('kit-2')] } });
// (fhir-kit-client's delete takes an id only: the conditional URL goes through its httpClient.)
const many = await failure(client.httpClient.delete('Patient?gender=female&family=Kit'));
assert.equal(many.status, 412);
await client.httpClient.delete('Patient?identifier=urn:e2e:mrn|kit-2');
const left = await client.search({ resourceType: 'Patient', searchParams: { family: 'Kit' } });
assert.equal(left.entry.length, 1);
step('conditional delete');
console.log('done');
