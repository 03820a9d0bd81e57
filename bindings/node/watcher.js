'use strict';
// A thread of the Node binding (index.js, class Thread), with its own
// connection to the database file:
//   role 'watch': loops on sync_wait(pollMs, 'all') until flags[0] is set,
//                 posting { tables } for the 'change' event;
//   role 'io':    runs { id, op: 'push' | 'pull' } one at a time;
//   role 'wait':  runs { id, op: 'wait', deadline, scope } one at a time,
//                 in slices of pollMs so that a stop is seen quickly.
// Answers are { id, value } or { id, error }; { fatal } when the connection
// cannot be opened or the watch fails. flags[1] tells the main thread that
// the connection is open (1) or could not be (2). { stop: true } closes it.
const { parentPort, workerData } = require('node:worker_threads');
const { role, file, extension, driver, flags, pollMs } = workerData;

const errorOf = (e) => ({ name: e && e.name, message: String(e && e.message ? e.message : e), code: e && e.code });
const stopped = () => Atomics.load(flags, 0) !== 0;

// Runs fn inside the gate flags[2] (index.js, settleAtExit): false, without
// running it, once the process is exiting.
function gated(fn) {
  if (Atomics.compareExchange(flags, 2, 0, 1) !== 0) return false;
  try {
    fn();
  } finally {
    Atomics.store(flags, 2, 0);
    Atomics.notify(flags, 2);
  }
  return true;
}

let db;
try {
  const Database = require(driver);
  db = new Database(file, { fileMustExist: true, timeout: 10000 });
  db.loadExtension(extension);
  // A connection's first sync_wait(.., 'all') starts its watch (what changed
  // before is not news): started before the main thread is told the
  // connection is ready, so a write made after that is reported. The 'wait'
  // role tolerates an extension without the scope (its 'server' waits work).
  if (role === 'watch') db.prepare('SELECT sync_wait(0, ?)').get('all');
  else if (role === 'wait') { try { db.prepare('SELECT sync_wait(0, ?)').get('all'); } catch (e) { /* no 'all' scope */ } }
  Atomics.store(flags, 1, 1);
} catch (e) {
  if (db) db.close();
  db = null;
  Atomics.store(flags, 1, 2);
  parentPort.postMessage({ fatal: errorOf(e) });
} finally {
  Atomics.notify(flags, 1);
}

// sync_wait: the scope argument only when asked, so that 'server' (the
// default) works with an extension that has the one-argument form only.
function waitSql(scope) {
  return db.prepare(scope === undefined ? 'SELECT sync_wait(?)' : 'SELECT sync_wait(?, ?)').pluck();
}

// One slice of sync_wait: the tables, null, or undefined once exiting.
function slice(st, ms, scope) {
  let r;
  const args = scope === undefined ? [BigInt(ms)] : [BigInt(ms), scope];
  return gated(() => { r = st.get(...args); }) ? r : undefined;
}

function waitUntil(deadline, scope) {
  const st = waitSql(scope);
  for (;;) {
    const r = slice(st, Math.max(0, Math.min(pollMs, Math.ceil(deadline - Date.now()))), scope);
    if (r !== null) return r === undefined ? null : r;
    if (Date.now() >= deadline || stopped()) return null;
  }
}

function run(m) {
  if (m.op === 'push' || m.op === 'pull') {
    const st = db.prepare(`SELECT sync_${m.op}()`).pluck().safeIntegers(true);
    let r;
    if (!gated(() => { r = st.get(); })) throw new Error(`sync_${m.op}: the process is exiting`);
    return r;
  }
  if (m.op === 'wait') return waitUntil(m.deadline, m.scope);
  throw new Error(`sync: unknown thread call "${m.op}"`);
}

if (db && role === 'watch') {
  try {
    const st = waitSql('all');
    while (!stopped()) {
      const r = slice(st, pollMs, 'all');
      if (r === undefined) break;
      if (r !== null && !stopped()) parentPort.postMessage({ tables: JSON.parse(r) });
    }
  } catch (e) {
    parentPort.postMessage({ fatal: errorOf(e) });
  } finally {
    db.close();
  }
} else if (db) {
  parentPort.on('message', (m) => {
    if (m.stop) {
      db.close();
      parentPort.close();
      return;
    }
    if (stopped()) return; // queued before close(), which already rejected it
    try {
      parentPort.postMessage({ id: m.id, value: run(m) });
    } catch (e) {
      parentPort.postMessage({ id: m.id, error: errorOf(e) });
    }
  });
}
