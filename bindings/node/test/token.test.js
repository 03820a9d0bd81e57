'use strict';
// The token provider: sync.setTokenProvider(fn).
const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { workspace, waitFor } = require('../testlib/harness');

const ws = workspace();
after(() => ws.cleanup());

// A JWT-shaped token (syncd's --token compares it whole; the binding reads exp).
function jwt(expSeconds, tag = '') {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'node' + tag, exp: expSeconds })}.sig`;
}

describe('with syncd --token', () => {
  const TOKEN = 'node-test-token';
  let server;
  before(async () => { server = await ws.syncd('--token', TOKEN); });

  test('a refused token (needs_token) asks the provider and the worker resumes', async () => {
    const [db, sync] = ws.client(server.url);
    const calls = [];
    await sync.setTokenProvider(() => { calls.push(Date.now()); return calls.length === 1 ? 'stale' : TOKEN; });
    assert.equal(calls.length, 1);
    assert.equal(sync.config('token'), '********');
    db.exec("INSERT INTO todos(id, title) VALUES ('t1', 'x')");
    sync.start();
    assert.ok(await waitFor(() => sync.pending() === 0), `outbox did not drain: ${JSON.stringify(sync.status())}`);
    assert.equal(calls.length, 2);
    assert.equal(sync.status().needs_token, 0);
    await sync.close();
  });

  test('push() refused with 401 gets a new token and is tried once more', async () => {
    const [db, sync] = ws.client(server.url);
    let calls = 0;
    await sync.setTokenProvider(async () => (++calls === 1 ? 'stale' : TOKEN));
    db.exec("INSERT INTO todos(id, title) VALUES ('t2', 'x')");
    assert.equal(await sync.push(), 1);
    assert.equal(calls, 2);
    // a provider that keeps failing: the call fails with the server's answer
    await sync.setTokenProvider(() => 'stale');
    db.exec("INSERT INTO todos(id, title) VALUES ('t3', 'x')");
    await assert.rejects(sync.push(), /^SqliteError: sync_push: HTTP 401/);
    await sync.close();
  });
});

test("a JWT is renewed before its exp, with no server's refusal", async () => {
  const [, sync] = ws.client('http://127.0.0.1:9');
  let calls = 0;
  await sync.setTokenProvider(() => jwt(Math.floor(Date.now() / 1000) + 2, String(++calls)));
  assert.equal(calls, 1);
  assert.ok(await waitFor(() => calls >= 2, 5000), 'the provider was not called before exp');
  await sync.setTokenProvider(null);
  const n = calls;
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(calls, n, 'a removed provider was called');
  await sync.close();
});

test('provider errors: the first rejects the promise, later ones go to the error event', async () => {
  const [, sync] = ws.client('http://127.0.0.1:9');
  await assert.rejects(sync.setTokenProvider(() => ''), /the token provider must return a non-empty string/);
  await assert.rejects(sync.setTokenProvider('token'), /the provider must be a function/);
  let calls = 0;
  const errors = [];
  sync.on('error', (e) => errors.push(e.message));
  await sync.setTokenProvider(() => {
    if (++calls > 1) throw new Error('identity server down');
    return jwt(Math.floor(Date.now() / 1000) + 1);
  });
  assert.ok(await waitFor(() => errors.length > 0, 5000), 'no error event');
  assert.deepEqual(errors, ['identity server down']);
  await sync.close();
});
