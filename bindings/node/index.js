'use strict';
// sqlite-sync for better-sqlite3: offline-first sync for any database.
//
//   const Database = require('better-sqlite3');
//   const db = new Database('todo.db');
//   const sync = require('sqlite-sync').load(db);   // loads the extension
//   sync.init('http://127.0.0.1:8080');             // once per database file
//   sync.track('todos');
//   sync.on('change', (tables) => render());        // any change, local writes too
//   sync.start();                                   // the background worker
//   await sync.push();                              // network calls are Promises
//
// A thin layer over the extension's SQL functions (README, "API"). Local
// calls run one SELECT on the connection they were given and return at once;
// the extension's errors come out as better-sqlite3's SqliteError with the
// extension's message ("sync_track: table "x" has no PRIMARY KEY").
//
// Calls that wait on the network or for a change (push, pull, wait, the
// 'change' event) run on worker_threads (watcher.js), each with its own
// connection to the same file, so the event loop never blocks on them. The
// extension keeps the token, the online flag and the change counter per
// database file and process, so those threads share them with this one.
const fs = require('node:fs');
const path = require('node:path');
const { EventEmitter } = require('node:events');
const { Worker } = require('node:worker_threads');

const ENV_VAR = 'SQLITE_SYNC_EXTENSION';
const SUFFIX = process.platform === 'darwin' ? '.dylib' : '.so';
// How long a thread's sync_wait blocks before it looks at its stop flag:
// the longest close() waits for the 'change' and wait() threads.
const POLL_MS = 200;

// Path of the extension: $SQLITE_SYNC_EXTENSION; sync.so next to this file
// (or the path `make install` wrote to installed.json); the repository's
// ext/sync.so when this runs from a checkout.
function findExtension() {
  const env = process.env[ENV_VAR];
  if (env) {
    for (const p of [env, env + SUFFIX]) if (fs.existsSync(p) && fs.statSync(p).isFile()) return path.resolve(p);
    throw new Error(`${ENV_VAR}=${env} does not name an existing file`);
  }
  const candidates = [path.join(__dirname, 'sync' + SUFFIX)];
  try {
    candidates.push(JSON.parse(fs.readFileSync(path.join(__dirname, 'installed.json'), 'utf8')).extension);
  } catch (e) { /* not installed by make install */ }
  candidates.push(path.join(__dirname, '..', '..', 'ext', 'sync' + SUFFIX));
  for (const c of candidates) if (c && fs.existsSync(c)) return c;
  throw new Error(`sqlite-sync extension not found (run \`make\` in the repository, or set ${ENV_VAR}); looked at: ${candidates.join(', ')}`);
}

// Loads the extension into db (a better-sqlite3 Database) and returns a Sync.
function load(db, extensionPath) {
  const p = extensionPath || findExtension();
  db.loadExtension(p);
  return new Sync(db, p);
}

// ---- exact integers ----
// Integers are read with safeIntegers (BigInt) and handed out as a number
// when one holds them exactly, else as a BigInt; with big set (the
// connection's defaultSafeIntegers(true)), always as a BigInt.
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
function intOut(v, big) {
  if (typeof v !== 'bigint' || big || v > MAX_SAFE || v < -MAX_SAFE) return v;
  return Number(v);
}

// JSON text with exact integers: JSON.parse rounds those beyond 2^53.
const NUM = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const STR = /"(?:[^"\\\u0000-\u001f]|\\.)*"/y;
function parseJson(text, big) {
  if (!big && !/\d{16}/.test(text)) return JSON.parse(text);
  let i = 0;
  const fail = () => { throw new SyntaxError(`sqlite-sync: malformed JSON at offset ${i}`); };
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++; };
  const string = () => {
    STR.lastIndex = i;
    const m = STR.exec(text);
    if (!m) fail();
    i = STR.lastIndex;
    return JSON.parse(m[0]);
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      const obj = c === '{';
      const out = obj ? {} : [];
      const end = obj ? '}' : ']';
      i++;
      ws();
      if (text[i] === end) { i++; return out; }
      for (;;) {
        if (obj) {
          ws();
          if (text[i] !== '"') fail();
          const k = string();
          ws();
          if (text[i++] !== ':') fail();
          // defineProperty: a column named __proto__ stays a plain key
          Object.defineProperty(out, k, { value: value(), enumerable: true, writable: true, configurable: true });
        } else out.push(value());
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === end) { i++; return out; }
        fail();
      }
    }
    if (c === '"') return string();
    for (const [w, v] of [['true', true], ['false', false], ['null', null]]) {
      if (text.startsWith(w, i)) { i += w.length; return v; }
    }
    NUM.lastIndex = i;
    const m = NUM.exec(text);
    if (!m) fail();
    i = NUM.lastIndex;
    return m[1] || m[2] ? Number(m[0]) : intOut(BigInt(m[0]), big);
  };
  const v = value();
  ws();
  if (i !== text.length) fail();
  return v;
}

// Row values to the extension's JSON: Buffers as {"$base64": ...}, BigInts exact.
function rowJson(row) {
  const parts = [];
  for (const [k, v] of Object.entries(row)) {
    let j;
    if (typeof v === 'bigint') j = v.toString();
    else if (Buffer.isBuffer(v) || v instanceof Uint8Array) j = JSON.stringify({ $base64: Buffer.from(v).toString('base64') });
    else j = JSON.stringify(v === undefined ? null : v);
    parts.push(JSON.stringify(k) + ':' + j);
  }
  return '{' + parts.join(',') + '}';
}

function decodeRow(text, big) {
  if (text == null) return null;
  const o = parseJson(text, big);
  for (const [k, v] of Object.entries(o)) {
    if (v && typeof v === 'object' && Object.keys(v).length === 1 && typeof v.$base64 === 'string') o[k] = Buffer.from(v.$base64, 'base64');
  }
  return o;
}

// A JWT's exp in unix ms, or null when token is not a JWT with one.
function jwtExp(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const exp = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : null;
  } catch (e) {
    return null;
  }
}

// The error of a sync_push/sync_pull whose token the server refused.
const REFUSED = /^sync_(push|pull): HTTP 40[13]\b/;

// better-sqlite3 binds every JS number as a REAL: integers go as BigInt.
const intArg = (v) => (typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : v);
const jsonText = (v) => (typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('utf8') : JSON.stringify(v));

// The file of db's main database, or null (in memory or temporary).
function dbFile(db) {
  const main = db.pragma('database_list').find((d) => d.name === 'main');
  return (main && main.file) || null;
}

// The better-sqlite3 module db came from, so the threads use the same one.
function driverPath(db) {
  for (const m of Object.values(require.cache)) if (m && m.exports === db.constructor) return m.filename;
  return require.resolve('better-sqlite3', { paths: [process.cwd(), __dirname] });
}

// One worker_thread (watcher.js) with its own connection to the file.
// role 'io' runs push and pull, 'wait' runs wait() calls (one after the
// other, on a connection of its own so that each reports the changes since
// the one before), 'watch' loops on sync_wait for the 'change' event. The
// thread is unref'd while it has nothing to do: only a call under way (or,
// for 'watch', the listeners) keeps the process alive.
class Thread {
  constructor(sync, role, file, onTables) {
    this.role = role;
    this.sync = sync;
    this.onTables = onTables;
    this.jobs = new Map();
    this.nextId = 1;
    this.dead = false;
    // flags[0]: stop asked; flags[1]: 1 once the connection is open, 2 if
    // it failed; flags[2]: the call gate (see settleAtExit)
    this.flags = new Int32Array(new SharedArrayBuffer(12));
    this.w = new Worker(path.join(__dirname, 'watcher.js'), {
      workerData: { role, file, extension: sync.extensionPath, driver: driverPath(sync.db), flags: this.flags, pollMs: POLL_MS },
    });
    this.w.unref();
    this.exited = new Promise((res) => this.w.once('exit', res));
    live.add(this);
    if (!exitHooked) { exitHooked = true; process.once('exit', settleAtExit); }
    this.w.once('exit', () => live.delete(this));
    this.w.on('message', (m) => this._message(m));
    this.w.on('error', (e) => this._fail(e));
    this.w.on('exit', () => this._fail(new Error(`sync: the ${role} thread ended`)));
  }

  // Blocks (once, for a thread start) until the connection is open, so that
  // a change committed after the caller returns is not missed.
  ready() { Atomics.wait(this.flags, 1, 0, 10000); }

  _message(m) {
    if (m.fatal) { this._fail(this.sync._error(m.fatal)); return; }
    if (m.tables) { if (!this.dead && this.onTables) this.onTables(m.tables); return; }
    const job = this.jobs.get(m.id);
    if (!job) return;
    this._settled(m.id);
    if (m.error) job.reject(this.sync._error(m.error));
    else job.resolve(m.value);
  }

  _settled(id) {
    this.jobs.delete(id);
    if (this.jobs.size === 0 && this.role !== 'watch') this.w.unref();
  }

  _fail(err) {
    if (this.dead) return;
    this.dead = true;
    for (const job of this.jobs.values()) job.reject(err);
    this.jobs.clear();
    this.sync._threadFailed(this, err);
  }

  call(msg) {
    if (this.dead) return Promise.reject(new Error(`sync: the ${this.role} thread ended`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      if (this.jobs.size === 1) this.w.ref();
      this.w.postMessage({ ...msg, id });
    });
  }

  // Asks the thread to stop; the promise resolves once it closed its
  // connection (within POLL_MS for 'watch' and 'wait', which stay ref'd
  // till then so that the promise can settle). Calls under way are rejected
  // at once: a push stuck on a silent server finishes in the background,
  // holding no one.
  stop(what) {
    const err = new Error(`sync: ${what}: the Sync was closed`);
    this.dead = true;
    for (const job of this.jobs.values()) job.reject(err);
    this.jobs.clear();
    Atomics.store(this.flags, 0, 1);
    if (this.role !== 'watch') this.w.postMessage({ stop: true });
    if (this.role === 'io') this.w.unref();
    else this.w.ref();
    return this.exited;
  }
}

// At exit Node terminates the threads; one that is inside the extension then
// (a push waiting on a slow server, a sync_wait slice) aborts the whole
// process when it returns: better-sqlite3 cannot build its result or error
// in a terminating thread. So the exit closes each thread's gate
// (flags[2]: 0 idle, 1 in a call, 2 closed), waiting for a call under way
// to return (every request has timeout_ms); a closed gate starts no call.
const live = new Set();
let exitHooked = false;
function settleAtExit() {
  for (const t of live) {
    while (Atomics.compareExchange(t.flags, 2, 0, 2) === 1) Atomics.wait(t.flags, 2, 1);
  }
}

class Sync extends EventEmitter {
  constructor(db, extensionPath) {
    super();
    this.db = db;
    this.extensionPath = extensionPath;
    this._threads = { io: null, wait: null };
    this._watcher = null;
    this._tp = null; // the token provider's state
    // 'change' listeners run a watcher thread; it stops with the last one.
    this.on('newListener', (ev) => { if (ev === 'change' && !this._watcher) this._watch(); });
    this.on('removeListener', (ev) => { if (ev === 'change' && this.listenerCount('change') === 0) this.unwatch(); });
  }

  // ---- local calls ----
  // One value, integers as BigInt (see intOut).
  _get(sql, ...args) { return this.db.prepare(sql).pluck().safeIntegers(true).get(...args.map(intArg)); }
  _count(sql, ...args) { const v = this._get(sql, ...args); return typeof v === 'bigint' ? Number(v) : v; }
  _one(sql, ...args) { return intOut(this._get(sql, ...args), false); }
  // 1 when this connection reads integers as BigInt (db.defaultSafeIntegers(true)).
  _bigMode() { return typeof this.db.prepare('SELECT 1').pluck().get() === 'bigint'; }

  // sync_init: creates the tables once, returns the client id; url null = bring your own transport.
  init(url = null, options) {
    return options ? this._get('SELECT sync_init(?, ?)', url, JSON.stringify(options)) : this._get('SELECT sync_init(?)', url);
  }
  // existing: what happens to the rows already there when the table is first
  // tracked: 'push' (the default, queued as inserts), 'keep' (local-only,
  // listed by orphans()) or 'server' (replaced by the server's rows).
  track(table, options) {
    if (options == null) this._get('SELECT sync_track(?)', table);
    else this._get('SELECT sync_track(?, ?)', table, JSON.stringify(options));
  }
  untrack(table) { this._get('SELECT sync_untrack(?)', table); }
  // sync_mutate: op is insert, update, upsert or delete; returns the mutation id, null when nothing changed.
  mutate(table, op, row) { return this._one('SELECT sync_mutate(?, ?, ?)', table, op, rowJson(row)); }
  pending() { return this._count('SELECT sync_pending()'); }
  pendingRows() { return this._rows('SELECT * FROM sync_pending'); }
  rejected() { return this._rows('SELECT * FROM sync_rejected ORDER BY id'); }
  orphans() { return this._rows('SELECT * FROM sync_orphans'); }
  _rows(sql) {
    const big = this._bigMode();
    return this.db.prepare(sql).safeIntegers(true).all().map((r) => {
      const o = {};
      for (const [k, v] of Object.entries(r)) o[k] = intOut(v, false);
      o.pk = decodeRow(r.pk, big);
      if ('data' in r) o.data = decodeRow(r.data, big);
      if ('row' in r) o.row = decodeRow(r.row, big);
      return o;
    });
  }
  clearRejected(ids) {
    if (ids == null) this.db.prepare('DELETE FROM sync_rejected').run();
    else { const st = this.db.prepare('DELETE FROM sync_rejected WHERE id = ?'); for (const id of ids) st.run(intArg(id)); }
  }
  cursor() { return this._get('SELECT sync_cursor()'); }
  // Bring your own transport: the POST /push body (text or null), its answer, a pull page or event.
  pushBatch(limit) { return limit == null ? this._get('SELECT sync_push_batch()') : this._get('SELECT sync_push_batch(?)', limit); }
  ack(response) { return this._count('SELECT sync_ack(?)', jsonText(response)); }
  apply(changes) { return this._count('SELECT sync_apply(?)', jsonText(changes)); }
  // The worker: a thread of the extension's, it never blocks this one.
  start() { this._get('SELECT sync_start()'); }
  stop() { this._get('SELECT sync_stop()'); }
  online(value) {
    const on = value === undefined ? this._count('SELECT sync_online()') : this._count('SELECT sync_online(?)', value ? 1 : 0);
    return on === 1;
  }
  // sync_config(key) reads, config(key, value) sets (null = back to the
  // default; a boolean goes as 1 or 0, which better-sqlite3 cannot bind).
  config(key, value) {
    if (arguments.length < 2) return this._one('SELECT sync_config(?)', key);
    return this._one('SELECT sync_config(?, ?)', key, typeof value === 'boolean' ? Number(value) : value);
  }
  status() {
    const r = this.db.prepare('SELECT * FROM sync_status').safeIntegers(true).get();
    for (const k of Object.keys(r)) r[k] = intOut(r[k], false);
    return r;
  }

  // ---- network calls: Promises, run on the 'io' thread ----
  push() { return this._net('push'); }
  pull() { return this._net('pull'); }

  _net(op) {
    return this._io(op).catch(async (e) => {
      // The server refused the token: ask the provider and try once more.
      // (sync_push/sync_pull say so in their error and set needs_token.)
      if (!this._tp || !(REFUSED.test(e.message) || this._needsToken())) throw e;
      await this._refreshToken(this._tp);
      return this._io(op);
    });
  }

  _io(op) {
    try {
      const t = this._thread('io');
      if (t) return t.call({ op }).then(Number);
      // In memory: no second connection can see it, so it runs here.
      return Promise.resolve(this._count(`SELECT sync_${op}()`));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  // The tables changed since the previous wait() (scope 'server': by the
  // server; 'all': local writes too), or null after timeoutMs. The first
  // call starts the thread: changes from then on count.
  wait(timeoutMs, scope) {
    try {
      if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) throw new RangeError('sync.wait: timeoutMs must be a non-negative number');
      const t = this._thread('wait');
      if (!t) return Promise.resolve(this._waitHere(timeoutMs, scope));
      return t.call({ op: 'wait', deadline: Date.now() + timeoutMs, scope }).then((r) => (r == null ? null : JSON.parse(r)));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  _waitHere(timeoutMs, scope) { // answers the extension's "needs a database file"
    const ms = Math.floor(timeoutMs);
    const r = scope === undefined ? this._get('SELECT sync_wait(?)', ms) : this._get('SELECT sync_wait(?, ?)', ms, scope);
    return r == null ? null : JSON.parse(r);
  }

  // Resolves true once the first full sync has completed
  // (sync_status.first_sync_done), false after timeoutMs.
  waitFirstSync(timeoutMs) {
    return new Promise((resolve, reject) => {
      if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) throw new RangeError('sync.waitFirstSync: timeoutMs must be a non-negative number');
      const end = Date.now() + timeoutMs;
      const check = () => {
        try {
          const done = this._one('SELECT first_sync_done FROM sync_status');
          if (done === 1) return resolve(true);
          const left = end - Date.now();
          if (left <= 0) return resolve(false);
          setTimeout(check, Math.min(50, left));
        } catch (e) {
          reject(e);
        }
      };
      check();
    });
  }

  _thread(role) {
    if (!this.db.open) throw new TypeError('The database connection is not open');
    let t = this._threads[role];
    if (t && !t.dead) return t;
    const file = dbFile(this.db);
    if (!file) return null;
    t = this._threads[role] = new Thread(this, role, file);
    if (role === 'wait') t.ready();
    return t;
  }

  _threadFailed(t, err) {
    if (t === this._watcher) {
      this._stopWatcher();
      this._report(err);
    }
    for (const role of Object.keys(this._threads)) if (this._threads[role] === t) this._threads[role] = null;
  }

  // A thread's error as the error the same call would throw on this thread.
  _error(e) {
    const SqliteError = this.db.constructor && this.db.constructor.SqliteError;
    if (e.name === 'SqliteError' && typeof SqliteError === 'function' && typeof e.code === 'string') return new SqliteError(e.message, e.code);
    const err = new Error(e.message);
    if (e.code !== undefined) err.code = e.code;
    return err;
  }

  // An error nobody asked for (the watcher, the token provider): the 'error'
  // event when it has a listener, else a process warning, never a crash.
  _report(err) {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else process.emitWarning(`sqlite-sync: ${err.message} (no 'error' listener)`, { code: 'SQLITE_SYNC' });
  }

  // ---- the 'change' event ----
  // A thread with its own connection loops on sync_wait(POLL_MS, 'all'): the
  // tables changed by the server or by local writes (this connection's,
  // another's, another process's). It keeps the process alive while there
  // are listeners, and stops when the connection is closed.
  _watch() {
    const file = dbFile(this.db);
    if (!file) throw new Error('sync: the change event needs a database file (this one is in memory or temporary)');
    const t = new Thread(this, 'watch', file, (tables) => this.emit('change', tables));
    t.w.ref();
    // db.close() without close(): the thread's own connection would keep
    // it, and so the process, alive.
    t.check = setInterval(() => { if (!this.db.open) this.close(); }, 500);
    t.check.unref();
    this._watcher = t;
    t.ready();
  }

  _stopWatcher() {
    const t = this._watcher;
    if (!t) return Promise.resolve();
    this._watcher = null;
    clearInterval(t.check);
    return t.stop('the change event');
  }

  // Stops the watcher thread; resolves once it has closed its connection.
  unwatch() { return this._stopWatcher().then(() => {}); }

  // ---- the token provider ----
  // fn() returns a token (or a promise of one). It is called now (the
  // promise resolves once that token is set), again whenever the server
  // refuses the token (sync_status.needs_token: the worker waits for a new
  // one and resumes as soon as it is set) and shortly before a JWT's exp.
  // Later failures go to the 'error' event. null removes the provider.
  setTokenProvider(fn) {
    this._stopTokenProvider();
    if (fn == null) return Promise.resolve();
    if (typeof fn !== 'function') return Promise.reject(new TypeError('sync.setTokenProvider: the provider must be a function'));
    const tp = this._tp = { fn, busy: null, timer: null, poll: null, lastNeed: 0, gap: 0, retryAt: 0 };
    tp.poll = setInterval(() => this._pollToken(tp), 250);
    tp.poll.unref();
    return this._refreshToken(tp);
  }

  _stopTokenProvider() {
    const tp = this._tp;
    if (!tp) return;
    this._tp = null;
    clearInterval(tp.poll);
    clearTimeout(tp.timer);
  }

  _needsToken() {
    try { return this._one('SELECT needs_token FROM sync_status') === 1; } catch (e) { return false; }
  }

  _pollToken(tp) {
    if (this._tp !== tp || tp.busy || Date.now() < tp.retryAt) return;
    if (!this.db.open) { this._stopTokenProvider(); return; }
    if (!this._needsToken()) return;
    // A provider whose tokens keep being refused is asked again after 1, 2,
    // 4 ... 60 s, not on every poll.
    const now = Date.now();
    tp.gap = now - tp.lastNeed < 10000 ? Math.min(60000, Math.max(1000, tp.gap * 2)) : 0;
    tp.lastNeed = now;
    tp.retryAt = now + tp.gap;
    this._refreshToken(tp).catch((e) => this._report(e));
  }

  _refreshToken(tp) {
    if (tp.busy) return tp.busy;
    tp.busy = (async () => {
      try {
        const token = await tp.fn();
        if (typeof token !== 'string' || token === '') throw new TypeError('sync: the token provider must return a non-empty string');
        if (this._tp !== tp || !this.db.open) return;
        this.config('token', token);
        clearTimeout(tp.timer);
        const exp = jwtExp(token);
        const left = exp == null ? 0 : exp - Date.now();
        if (left > 0) {
          // a minute before exp, or halfway there for a token that lives less
          tp.timer = setTimeout(() => this._refreshToken(tp).catch((e) => this._report(e)),
            Math.min(2 ** 31 - 1, Math.max(500, left - Math.min(60000, left / 2))));
          tp.timer.unref();
        }
      } finally {
        tp.busy = null;
      }
    })();
    return tp.busy;
  }

  // ---- life ----
  // Starts the worker, runs fn (which may return a promise), stops the worker.
  async running(fn) {
    this.start();
    try { return await fn(this); } finally { this.stop(); }
  }

  // Stops the threads, the token provider and the worker (the connection
  // stays open). Calls under way are rejected.
  _shutdown() {
    this.removeAllListeners('change');
    this._stopTokenProvider();
    const exits = [this._stopWatcher()];
    for (const role of Object.keys(this._threads)) {
      const t = this._threads[role];
      this._threads[role] = null;
      // the io thread may be stuck on a silent server until timeout_ms: not awaited
      if (t && !t.dead) { const e = t.stop(role === 'io' ? 'push/pull' : 'wait'); if (role === 'wait') exits.push(e); }
    }
    if (this.db.open) this.stop();
    return Promise.all(exits).then(() => {});
  }

  close() { return this._shutdown(); }
}
// `using` / `await using` (Symbol.dispose is in Node from 20.4 and 18.18 on).
if (typeof Symbol.dispose === 'symbol') Sync.prototype[Symbol.dispose] = function dispose() { this._shutdown(); };
if (typeof Symbol.asyncDispose === 'symbol') Sync.prototype[Symbol.asyncDispose] = function asyncDispose() { return this._shutdown(); };

module.exports = { load, findExtension, Sync, ENV_VAR };
