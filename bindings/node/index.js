'use strict';
// sqlite-sync for better-sqlite3: offline-first sync for any database.
//
//   const Database = require('better-sqlite3');
//   const db = new Database('todo.db');
//   const sync = require('sqlite-sync').load(db);   // loads the extension
//   sync.init('http://127.0.0.1:8080');             // once per database file
//   sync.track('todos');
//   sync.on('change', (tables) => render());        // the server changed rows
//   sync.start();                                   // the background worker
//
// A thin layer over the extension's SQL functions (README, "API"): every
// method runs one SELECT on the connection it was given; the extension's
// errors come out as better-sqlite3's SqliteError with the extension's
// message ("sync_track: table "x" has no PRIMARY KEY").
const fs = require('node:fs');
const path = require('node:path');
const { EventEmitter } = require('node:events');
const { Worker } = require('node:worker_threads');

const ENV_VAR = 'SQLITE_SYNC_EXTENSION';
const SUFFIX = process.platform === 'darwin' ? '.dylib' : '.so';

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

function decodeRow(text) {
  if (text == null) return null;
  const o = JSON.parse(text);
  for (const [k, v] of Object.entries(o)) {
    if (v && typeof v === 'object' && Object.keys(v).length === 1 && typeof v.$base64 === 'string') o[k] = Buffer.from(v.$base64, 'base64');
  }
  return o;
}

const intArg = (v) => (typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : v);
const jsonText = (v) => (typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('utf8') : JSON.stringify(v));

class Sync extends EventEmitter {
  constructor(db, extensionPath) {
    super();
    this.db = db;
    this.extensionPath = extensionPath;
    this._watcher = null;
    // 'change' listeners run a watcher thread; it stops with the last one.
    this.on('newListener', (ev) => { if (ev === 'change' && !this._watcher) this._watch(); });
    this.on('removeListener', (ev) => { if (ev === 'change' && this.listenerCount('change') === 0) this.unwatch(); });
  }

  // better-sqlite3 binds every JS number as a REAL: integers go as BigInt.
  _one(sql, ...args) { return this.db.prepare(sql).pluck().get(...args.map(intArg)); }

  // sync_init: creates the tables once, returns the client id; url null = bring your own transport.
  init(url = null, options) {
    return options ? this._one('SELECT sync_init(?, ?)', url, JSON.stringify(options)) : this._one('SELECT sync_init(?)', url);
  }
  track(table) { this._one('SELECT sync_track(?)', table); }
  untrack(table) { this._one('SELECT sync_untrack(?)', table); }
  // sync_mutate: op is insert, update, upsert or delete; returns the mutation id, null when nothing changed.
  mutate(table, op, row) { return this._one('SELECT sync_mutate(?, ?, ?)', table, op, rowJson(row)); }
  pending() { return this._one('SELECT sync_pending()'); }
  pendingRows() {
    return this.db.prepare('SELECT * FROM sync_pending').all().map((r) => ({ ...r, pk: decodeRow(r.pk), data: decodeRow(r.data) }));
  }
  rejected() {
    return this.db.prepare('SELECT * FROM sync_rejected ORDER BY id').all().map((r) => ({ ...r, pk: decodeRow(r.pk), data: decodeRow(r.data) }));
  }
  clearRejected(ids) {
    if (ids == null) this.db.prepare('DELETE FROM sync_rejected').run();
    else { const st = this.db.prepare('DELETE FROM sync_rejected WHERE id = ?'); for (const id of ids) st.run(id); }
  }
  cursor() { return this._one('SELECT sync_cursor()'); }
  // Bring your own transport: the POST /push body (text or null), its answer, a pull page or event.
  pushBatch(limit) { return limit == null ? this._one('SELECT sync_push_batch()') : this._one('SELECT sync_push_batch(?)', limit); }
  ack(response) { return this._one('SELECT sync_ack(?)', jsonText(response)); }
  apply(changes) { return this._one('SELECT sync_apply(?)', jsonText(changes)); }
  // The worker.
  start() { this._one('SELECT sync_start()'); }
  stop() { this._one('SELECT sync_stop()'); }
  push() { return this._one('SELECT sync_push()'); }
  pull() { return this._one('SELECT sync_pull()'); }
  online(value) { return (value === undefined ? this._one('SELECT sync_online()') : this._one('SELECT sync_online(?)', value ? 1 : 0)) === 1; }
  // sync_config(key) reads, config(key, value) sets (null = back to the default).
  config(key, value) { return arguments.length < 2 ? this._one('SELECT sync_config(?)', key) : this._one('SELECT sync_config(?, ?)', key, value); }
  // sync_wait: blocks this thread up to timeoutMs; the tables the server changed, or null.
  wait(timeoutMs) { const r = this._one('SELECT sync_wait(?)', Math.max(0, Math.floor(timeoutMs))); return r == null ? null : JSON.parse(r); }
  status() { return this.db.prepare('SELECT * FROM sync_status').get(); }

  // Starts the worker, runs fn (which may return a promise), stops the worker.
  async running(fn) {
    this.start();
    try { return await fn(this); } finally { this.stop(); }
  }

  // The 'change' event: a worker_thread with its own connection loops on
  // sync_wait with a short timeout, so the event loop never blocks.
  _watch() {
    const main = this.db.pragma('database_list').find((d) => d.name === 'main');
    const file = main && main.file;
    if (!file) throw new Error('sync: the change event needs a database file (this one is in memory or temporary)');
    // flags[0]: stop asked; flags[1]: 1 once the thread's connection is open
    // (changes from then on are reported), 2 if it failed.
    const flags = new Int32Array(new SharedArrayBuffer(8));
    const w = new Worker(path.join(__dirname, 'watcher.js'), {
      workerData: { file, extension: this.extensionPath, driver: driverPath(this.db), flags, pollMs: 200 },
    });
    w.on('message', (m) => (m.tables ? this.emit('change', m.tables) : this.emit('error', new Error(m.error))));
    w.on('error', (e) => this.emit('error', e));
    this._watcher = { w, flags, exited: new Promise((res) => w.once('exit', res)) };
    // Wait (briefly, once) for the thread to be listening, so that no change
    // committed after on('change') returns is missed.
    Atomics.wait(flags, 1, 0, 10000);
  }

  // Stops the watcher thread; resolves once it has closed its connection.
  unwatch() {
    const wt = this._watcher;
    if (!wt) return Promise.resolve();
    this._watcher = null;
    Atomics.store(wt.flags, 0, 1);
    return wt.exited;
  }

  // Stops the watcher and the worker (the connection stays open).
  async close() {
    this.removeAllListeners('change');
    await this.unwatch();
    this.stop();
  }
}

// The better-sqlite3 module db came from, so the watcher uses the same one.
function driverPath(db) {
  for (const m of Object.values(require.cache)) if (m && m.exports === db.constructor) return m.filename;
  return require.resolve('better-sqlite3', { paths: [process.cwd(), __dirname] });
}

module.exports = { load, findExtension, Sync, ENV_VAR };
