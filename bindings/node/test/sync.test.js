'use strict';
// Tests of the Node binding (node:test) against a real syncd:
//   cd bindings/node && node --test
const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');

const { Database, sqliteSync, workspace, waitFor } = require('../testlib/harness');

const ws = workspace();
const client = ws.client;
after(() => ws.cleanup());

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

  test('track with existing rows: keep lists them, push queues them', () => {
    const db = new Database(ws.file());
    const sync = sqliteSync.load(db);
    db.exec("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (9007199254740993, 'old')");
    sync.init(null);
    sync.track('notes', { existing: 'keep' });
    assert.equal(sync.pending(), 0);
    assert.deepEqual(sync.orphans().map((o) => [o.table_name, o.pk, o.row, o.state]),
      [['notes', { id: 9007199254740993n }, { id: 9007199254740993n, body: 'old' }, 'kept']]);
    sync.track('notes', { existing: 'push' });
    assert.deepEqual(sync.orphans(), []);
    assert.deepEqual(sync.pendingRows().map((r) => [r.op, r.pk]), [['insert', { id: 9007199254740993n }]]);
    assert.throws(() => sync.track('notes', { existing: 'maybe' }), /^SqliteError: sync_track: /);
    db.close();
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

  test('64-bit integers stay exact in pendingRows() and rejected()', () => {
    const [db, sync] = client();
    const big = 9007199254740993n; // 2^53 + 1: a double rounds it to ...992
    db.prepare("INSERT INTO todos(id, title, done) VALUES ('a', 't', ?)").run(big);
    db.prepare("INSERT INTO todos(id, title, done) VALUES ('b', 't', ?)").run(-big);
    const rows = sync.pendingRows();
    assert.equal(rows[0].data.done, big);
    assert.equal(rows[1].data.done, -big);
    assert.equal(rows[0].id, 1); // what fits in a number stays a number
    // pushBatch's JSON text carries it as written
    assert.match(sync.pushBatch(), /"done":9007199254740993\b/);
    assert.equal(sync.ack({ results: [{ id: 2, status: 'rejected', reason: 'no' }] }), 1);
    assert.equal(sync.rejected()[0].data.done, -big);
  });

  test('defaultSafeIntegers(true): counts stay numbers, row values come as BigInt', () => {
    const [db, sync] = client('http://127.0.0.1:9');
    db.defaultSafeIntegers(true);
    db.exec("INSERT INTO todos(id, title) VALUES ('a', 't')");
    assert.equal(sync.pending(), 1);
    assert.equal(sync.online(), true);
    assert.equal(sync.online(false), false);
    assert.equal(sync.online(), false);
    assert.equal(sync.online(true), true);
    assert.equal(sync.config('batch_size'), 1000);
    assert.equal(sync.status().pending, 1);
    assert.equal(sync.mutate('todos', 'update', { id: 'a', done: 1 }), 2);
    const rows = sync.pendingRows();
    assert.equal(rows[0].id, 1);
    assert.equal(rows[0].data.done, 0n);
    assert.equal(rows[1].data.done, 1n);
  });

  test('Symbol.dispose and Symbol.asyncDispose stop the worker and the threads', async () => {
    const [, sync] = client('http://127.0.0.1:9');
    sync.start();
    assert.notEqual(sync.status().state, 'stopped');
    sync[Symbol.dispose]();
    assert.equal(sync.status().state, 'stopped');
    const [, s2] = client('http://127.0.0.1:9');
    s2.start();
    const w = assert.rejects(s2.wait(60000), /sync: wait: the Sync was closed/);
    await s2[Symbol.asyncDispose]();
    assert.equal(s2.status().state, 'stopped');
    await w;
  });
});

describe('with syncd', () => {
  let server;
  before(async () => { server = await ws.syncd(); });

  test('push and pull return Promises; wait reports what the server changed', async () => {
    const [a, sa] = client(server.url);
    const [b, sb] = client(server.url);
    a.exec("INSERT INTO todos(id, title) VALUES ('pp1', 'milk')");
    const p = sa.push();
    assert.ok(p instanceof Promise);
    assert.equal(await p, 1);
    assert.equal(sa.pending(), 0);
    const w = sb.wait(10000);
    assert.ok((await sb.pull()) >= 1);
    assert.deepEqual(b.prepare("SELECT id, title FROM todos WHERE id = 'pp1'").get(), { id: 'pp1', title: 'milk' });
    assert.deepEqual(await w, ['todos']);
    assert.equal(await sb.wait(50), null);
    await assert.rejects(sb.wait(-1), /sync.wait: timeoutMs must be a non-negative number/);
    await sa.close();
    await sb.close();
  });

  test('push errors reject with the extension message', async () => {
    const [a, sa] = client('http://127.0.0.1:9');
    a.exec("INSERT INTO todos(id, title) VALUES ('e1', 'x')");
    await assert.rejects(sa.push(), (e) => e instanceof Database.SqliteError && /^sync_push: cannot reach http:\/\/127\.0\.0\.1:9/.test(e.message));
    assert.equal(sa.pending(), 1);
    // in memory there is no second connection: the call runs on this thread
    const m = new Database(':memory:');
    const sm = sqliteSync.load(m);
    sm.init('http://127.0.0.1:9');
    await assert.rejects(sm.pull(), /^SqliteError: sync_pull: cannot reach/);
    await assert.rejects(sm.wait(0), /^SqliteError: sync_wait: needs a database file/);
    m.close();
    await sa.close();
  });

  test('push() to a server that never answers leaves the event loop free', async (t) => {
    const net = require('node:net');
    const socks = new Set();
    const silent = net.createServer((s) => { socks.add(s); s.on('error', () => {}); }); // reads, never answers
    await new Promise((r) => silent.listen(0, '127.0.0.1', r));
    t.after(() => { for (const s of socks) s.destroy(); silent.close(); });
    const [a, sa] = client(`http://127.0.0.1:${silent.address().port}`);
    sa.config('timeout_ms', 1500);
    a.exec("INSERT INTO todos(id, title) VALUES ('s1', 'x')");
    let ticks = 0;
    const iv = setInterval(() => ticks++, 20);
    const started = Date.now();
    await assert.rejects(sa.push(), /^SqliteError: sync_push: .*(timed out|Timeout)/i);
    clearInterval(iv);
    assert.ok(Date.now() - started >= 1000, 'the push did wait for the silent server');
    // a push that blocked the loop would leave ticks at 0
    assert.ok(ticks >= 10, `the event loop ticked ${ticks} times during the push`);
    await sa.close();
  });

  test('config', () => {
    const [, sa] = client(server.url, { batch_size: 7 });
    assert.equal(sa.config('batch_size'), 7);
    assert.equal(sa.config('batch_size', 50), 50);
    assert.equal(sa.config('batch_size', null), 1000);
    assert.equal(sa.config('token'), null);
    assert.equal(sa.config('sse', false), 'off');
    assert.equal(sa.config('sse', true), 'on');
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
      assert.ok(await waitFor(() => b.prepare("SELECT 1 FROM todos WHERE id = 'w1'").get()));
      assert.ok(await waitFor(() => seen.length > 0), "no 'change' event");
      assert.deepEqual(seen[0], ['todos']);
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

  test("waitFirstSync() resolves once the first full sync is done", async () => {
    const [a, sa] = client(server.url);
    a.exec("INSERT INTO todos(id, title) VALUES ('f1', 'x')");
    await sa.push();
    const [, sb] = client(server.url);
    assert.equal(await sb.waitFirstSync(0), false);
    assert.equal(sb.status().first_sync_done, 0);
    sb.start();
    assert.equal(await sb.waitFirstSync(10000), true);
    assert.equal(sb.status().first_sync_done, 1);
    await sb.close();
    await sa.close();
  });
});

describe("the 'change' event", () => {
  test('reports local writes, from this connection and from another', async () => {
    const [db, sync] = client();
    const seen = [];
    sync.on('change', (tables) => seen.push(tables));
    db.exec("INSERT INTO todos(id, title) VALUES ('l1', 'local')");
    assert.ok(await waitFor(() => seen.length > 0), "no 'change' event for a local write");
    assert.deepEqual(seen[0], ['todos']);
    const other = new Database(db.name);
    other.exec("UPDATE todos SET done = 1 WHERE id = 'l1'"); // a connection without the extension
    other.close();
    assert.ok(await waitFor(() => seen.length > 1), "no 'change' event for another connection's write");
    assert.deepEqual(seen[1], ['todos']);
    await sync.close();
  });

  test('wait(ms, "all") reports local writes, wait(ms) only the server\'s', async () => {
    const [db, sync] = client();
    const all = sync.wait(10000, 'all');
    db.exec("INSERT INTO todos(id, title) VALUES ('l2', 'local')");
    assert.deepEqual(await all, ['todos']);
    const server = sync.wait(300);
    db.exec("INSERT INTO todos(id, title) VALUES ('l3', 'local')");
    assert.equal(await server, null);
    await sync.close();
  });

  test('needs a database file', () => {
    const sync = sqliteSync.load(new Database(':memory:'));
    assert.throws(() => sync.on('change', () => {}), /needs a database file/);
  });
});
