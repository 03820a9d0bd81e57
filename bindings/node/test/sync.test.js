'use strict';
// Tests of the Node binding (node:test) against a real syncd:
//   cd bindings/node && node --test
const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const Database = require('better-sqlite3');
const sqliteSync = require('..');

const ROOT = path.join(__dirname, '..', '..', '..');
const SYNCD = process.env.SYNCD || path.join(ROOT, 'server', 'syncd');
const SCHEMA = path.join(ROOT, 'bindings', 'todos.sql');
const DDL = fs.readFileSync(SCHEMA, 'utf8');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-sync-node-'));
let n = 0;
const dbs = [];

function client(url = null, options) {
  const db = new Database(path.join(dir, `c${++n}.db`));
  dbs.push(db);
  const sync = sqliteSync.load(db);
  db.exec(DDL);
  sync.clientId = sync.init(url, options);
  sync.track('todos');
  return [db, sync];
}

async function waitFor(pred, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = pred();
    if (v || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

function startSyncd() {
  return new Promise((resolve, reject) => {
    const p = spawn(SYNCD, ['--listen', '127.0.0.1:0', '--schema', SCHEMA, '--db', path.join(dir, 'server.db')],
      { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    const timer = setTimeout(() => { p.kill(); reject(new Error('syncd did not start')); }, 20000);
    p.on('error', reject);
    p.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) { clearTimeout(timer); resolve({ proc: p, url: out.split('\n')[0].trim() }); }
    });
  });
}

after(() => {
  for (const db of dbs) if (db.open) db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('load', () => {
  test('finds the extension and loads it', () => {
    const p = sqliteSync.findExtension();
    assert.ok(fs.existsSync(p), p);
    const db = new Database(':memory:');
    const sync = sqliteSync.load(db);
    assert.ok(sync instanceof sqliteSync.Sync);
    assert.equal(db.prepare('SELECT sync_wire(1)').pluck().get(), '1');
    db.close();
  });

  test('the environment variable wins', () => {
    const old = process.env[sqliteSync.ENV_VAR];
    try {
      const real = sqliteSync.findExtension();
      process.env[sqliteSync.ENV_VAR] = real.replace(/\.so$/, '');
      assert.equal(sqliteSync.findExtension(), real);
      process.env[sqliteSync.ENV_VAR] = '/nonexistent/sync.so';
      assert.throws(() => sqliteSync.load(new Database(':memory:')), /SQLITE_SYNC_EXTENSION/);
    } finally {
      if (old === undefined) delete process.env[sqliteSync.ENV_VAR];
      else process.env[sqliteSync.ENV_VAR] = old;
    }
  });
});

describe('local engine (bring your own transport)', () => {
  test('init, track, pending', () => {
    const [db, sync] = client();
    assert.equal(sync.clientId.length, 36);
    assert.equal(sync.init(null), sync.clientId);
    db.prepare("INSERT INTO todos(id, title) VALUES ('a', 'buy milk')").run();
    db.prepare("UPDATE todos SET done = 1 WHERE id = 'a'").run();
    assert.equal(sync.pending(), 2);
    assert.deepEqual(sync.pendingRows().map((r) => [r.id, r.op, r.pk, r.data]), [
      [1, 'insert', { id: 'a' }, { id: 'a', title: 'buy milk', done: 0, data: null }],
      [2, 'update', { id: 'a' }, { done: 1 }],
    ]);
  });

  test('mutate keeps values exact', () => {
    const [db, sync] = client();
    // small blob: ext/value.c overflows its buffer decoding longer base64 (bug reported)
    const blob = Buffer.from([0, 1, 254, 255]);
    assert.equal(sync.mutate('todos', 'insert', { id: 'x', title: 't', done: 9223372036854775807n, data: blob }), 1);
    const row = db.prepare('SELECT done, data FROM todos').safeIntegers().get();
    assert.equal(row.done, 9223372036854775807n);
    assert.deepEqual(row.data, blob);
    assert.deepEqual(sync.pendingRows()[0].data.data, blob);
    assert.equal(sync.mutate('todos', 'update', { id: 'x', title: 't' }), null);
    assert.equal(sync.mutate('todos', 'update', { id: 'x', data: 0.1 + 0.2 }), 2);
    assert.equal(db.prepare('SELECT data FROM todos').pluck().get(), 0.30000000000000004);
    assert.equal(sync.mutate('todos', 'delete', { id: 'x' }), 3);
  });

  test('errors carry the extension message and change nothing', () => {
    const [db, sync] = client();
    db.exec('CREATE TABLE nokey(a, b)');
    assert.throws(() => sync.track('nokey'), /^SqliteError: sync_track: table "nokey" has no PRIMARY KEY/);
    assert.throws(() => sync.mutate('todos', 'frobnicate', { id: 'a' }), /^SqliteError: sync_mutate: /);
    assert.equal(sync.pending(), 0);
  });

  test('untrack', () => {
    const [db, sync] = client();
    db.exec("INSERT INTO todos(id, title) VALUES ('a', 'x')");
    sync.untrack('todos');
    assert.equal(sync.pending(), 0);
  });

  test('pushBatch, ack, apply, rejected', () => {
    const [db, sync] = client();
    assert.equal(sync.pushBatch(), null);
    db.exec("INSERT INTO todos(id, title) VALUES ('a', 'buy milk'), ('b', 'bad')");
    const batch = JSON.parse(sync.pushBatch());
    assert.equal(batch.client_id, sync.clientId);
    assert.deepEqual(batch.mutations.map((m) => m.id), [1, 2]);
    assert.equal(JSON.parse(sync.pushBatch(1)).mutations.length, 1);
    assert.equal(sync.ack({ results: [
      { id: 1, status: 'applied', row: { id: 'a', title: 'BUY MILK', done: 0, data: null }, version: 1 },
      { id: 2, status: 'rejected', reason: 'CHECK constraint failed' }] }), 2);
    assert.deepEqual(db.prepare('SELECT id, title FROM todos').all(), [{ id: 'a', title: 'BUY MILK' }]);
    assert.deepEqual(sync.rejected().map((r) => [r.id, r.pk, r.reason]), [[2, { id: 'b' }, 'CHECK constraint failed']]);
    sync.clearRejected([2]);
    assert.deepEqual(sync.rejected(), []);
    assert.equal(sync.apply(JSON.stringify({ changes: [{ table: 'todos', op: 'upsert', pk: { id: 'c' },
      row: { id: 'c', title: 'call mum', done: 0, data: null }, version: 3 }], cursor: '3' })), 1);
    assert.equal(sync.cursor(), '3');
    assert.equal(sync.status().state, 'stopped');
  });
});

describe('with syncd', () => {
  let server;
  before(async () => { server = await startSyncd(); });
  after(() => { server.proc.kill(); });

  test('push and pull', () => {
    const [a, sa] = client(server.url);
    const [b, sb] = client(server.url);
    a.exec("INSERT INTO todos(id, title) VALUES ('pp1', 'milk')");
    assert.equal(sa.push(), 1);
    assert.equal(sa.pending(), 0);
    assert.ok(sb.pull() >= 1);
    assert.deepEqual(b.prepare("SELECT id, title FROM todos WHERE id = 'pp1'").get(), { id: 'pp1', title: 'milk' });
    assert.ok(sb.wait(0).includes('todos'));
    assert.equal(sb.wait(50), null);
  });

  test('config', () => {
    const [, sa] = client(server.url, { batch_size: 7 });
    assert.equal(sa.config('batch_size'), 7);
    assert.equal(sa.config('batch_size', 50), 50);
    assert.equal(sa.config('batch_size', null), 1000);
    assert.equal(sa.config('token'), null);
    assert.throws(() => sa.config('nope'), /sync_config: unknown key "nope"/);
  });

  test("running(), the 'change' event, online(false/true)", async () => {
    const [a, sa] = client(server.url);
    const [b, sb] = client(server.url);
    const seen = [];
    sb.on('change', (tables) => seen.push(tables));
    sb.start();
    await sa.running(async () => {
      assert.notEqual(sa.status().state, 'stopped');
      assert.equal(sa.online(), true);
      a.exec("INSERT INTO todos(id, title) VALUES ('w1', 'from a')");
      assert.ok(await waitFor(() => seen.length > 0), "no 'change' event");
      assert.deepEqual(seen[0], ['todos']);
      assert.ok(await waitFor(() => b.prepare("SELECT 1 FROM todos WHERE id = 'w1'").get()));
      assert.equal(sa.online(false), false);
      a.exec("INSERT INTO todos(id, title) VALUES ('w2', 'offline')");
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(sa.pending(), 1);
      assert.equal(sa.status().state, 'offline');
      assert.equal(sa.online(true), true);
      assert.ok(await waitFor(() => sa.pending() === 0), 'outbox did not drain');
      assert.ok(await waitFor(() => b.prepare("SELECT 1 FROM todos WHERE id = 'w2'").get()));
    });
    assert.equal(sa.status().state, 'stopped');
    await sb.close();
    assert.equal(sb.status().state, 'stopped');
    assert.equal(sb.listenerCount('change'), 0);
  });

  test("the 'change' event needs a database file", () => {
    const sync = sqliteSync.load(new Database(':memory:'));
    assert.throws(() => sync.on('change', () => {}), /needs a database file/);
  });
});
