'use strict';
// What the binding does to the life of the process: threads that must not
// keep it alive, calls that must, failures that must not crash it. Each case
// runs in a child process (testlib/harness.js runChild).
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { workspace, runChild } = require('../testlib/harness');

const ws = workspace();
after(() => ws.cleanup());

// The child's prelude: a file database with the to-do table, tracked.
const prelude = (file, url = null) => `
const Database = require('better-sqlite3');
const db = new Database(${JSON.stringify(file)});
const sync = require('.').load(db);
db.exec(require('fs').readFileSync('../todos.sql', 'utf8'));
sync.init(${JSON.stringify(url)});
sync.track('todos');
`;

test("a 'change' listener keeps the process alive until close() or db.close()", async () => {
  for (const [how, end] of [['sync.close()', 'sync.close();'], ['db.close()', 'db.close();']]) {
    const r = await runChild(`${prelude(ws.file())}
      sync.on('change', () => {});
      setTimeout(() => { console.log('closing'); ${end} }, 300);`, { ms: 10000 });
    assert.equal(r.timedOut, false, `the process did not exit after ${how}: ${r.stderr}`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /closing/);
  }
  // without either, the listener keeps it alive (as `todo.js watch` needs)
  let alive = null;
  const r = await runChild(`${prelude(ws.file())}
    sync.on('change', () => {});
    console.log('listening');`, {
    onLine: (line, p) => {
      if (line === 'listening') setTimeout(() => { alive = p.exitCode === null && p.signalCode === null; p.kill(); }, 800);
    },
  });
  assert.equal(alive, true, `the process exited with a change listener: ${r.stderr}`);
});

test("a watcher failure without an 'error' listener is a warning, not a crash", async () => {
  const file = ws.file();
  const r = await runChild(`${prelude(file)}
    const broken = new (require('.').Sync)(db, '/nonexistent/sync.so');
    broken.on('change', () => {});
    setTimeout(() => console.log('still running'), 300);`, { ms: 10000 });
  assert.equal(r.timedOut, false, 'the failed watcher kept the process alive');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /still running/);
  assert.match(r.stderr, /Warning: .*\/nonexistent\/sync\.so/);
  // with a listener, the listener gets it
  const r2 = await runChild(`${prelude(ws.file())}
    const broken = new (require('.').Sync)(db, '/nonexistent/sync.so');
    broken.on('error', (e) => console.log('error event: ' + e.message));
    broken.on('change', () => {});`, { ms: 10000 });
  assert.equal(r2.code, 0, r2.stderr);
  assert.match(r2.stdout, /error event: .*\/nonexistent\/sync\.so/);
  assert.doesNotMatch(r2.stderr, /Warning/);
});

test('exiting while a push waits on a silent server neither aborts nor hangs', async () => {
  const net = require('node:net');
  const socks = new Set();
  const silent = net.createServer((s) => { socks.add(s); s.on('error', () => {}); });
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  try {
    for (const end of ['process.exit(0)', 'sync.close()']) {
      const r = await runChild(`${prelude(ws.file(), `http://127.0.0.1:${silent.address().port}`)}
        sync.config('timeout_ms', 500);
        db.exec("INSERT INTO todos(id, title) VALUES ('a', 'x')");
        sync.push().catch((e) => console.log('rejected: ' + e.message));
        setTimeout(() => { console.log('ending'); ${end}; }, 100);`, { ms: 10000 });
      // better-sqlite3 aborts (SIGABRT, "FATAL ERROR") in a thread terminated inside a call
      assert.equal(r.timedOut, false, `${end}: the process did not exit`);
      assert.equal(r.signal, null, `${end}: ${r.stderr}`);
      assert.equal(r.code, 0, `${end}: ${r.stderr}`);
      assert.match(r.stdout, /ending/);
    }
  } finally {
    for (const s of socks) s.destroy();
    silent.close();
  }
});

test('a push under way keeps the process alive until it settles', async () => {
  const net = require('node:net');
  const socks = new Set();
  const silent = net.createServer((s) => { socks.add(s); s.on('error', () => {}); });
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  try {
    const r = await runChild(`${prelude(ws.file(), `http://127.0.0.1:${silent.address().port}`)}
      sync.config('timeout_ms', 500);
      db.exec("INSERT INTO todos(id, title) VALUES ('a', 'x')");
      sync.push().catch((e) => console.log('settled: ' + e.message));`, { ms: 10000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /settled: sync_push: /);
  } finally {
    for (const s of socks) s.destroy();
    silent.close();
  }
});
