'use strict';
// Shared by the Node binding's tests (test/*.test.js): temporary databases,
// a syncd of their own, child processes. Not a test file itself (node --test
// runs everything under test/).
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

// A temporary folder for one test file, removed by cleanup().
function workspace() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-sync-node-'));
  let n = 0;
  const dbs = [];
  const procs = [];
  return {
    dir,
    file: (name) => path.join(dir, name || `c${++n}.db`),
    // A database with the to-do table, sync_init(url, options), todos tracked.
    client(url = null, options) {
      const db = new Database(path.join(dir, `c${++n}.db`));
      dbs.push(db);
      const sync = sqliteSync.load(db);
      db.exec(DDL);
      sync.clientId = sync.init(url, options);
      sync.track('todos');
      return [db, sync];
    },
    // syncd on a port the OS picks; resolves { proc, url }.
    syncd(...args) {
      return new Promise((resolve, reject) => {
        const p = spawn(SYNCD, ['--listen', '127.0.0.1:0', '--schema', SCHEMA,
          '--db', path.join(dir, `server${++n}.db`), ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
        procs.push(p);
        let out = '';
        const timer = setTimeout(() => { p.kill(); reject(new Error('syncd did not start')); }, 20000);
        p.on('error', reject);
        p.stdout.on('data', (d) => {
          out += d;
          if (out.includes('\n')) { clearTimeout(timer); resolve({ proc: p, url: out.split('\n')[0].trim() }); }
        });
      });
    },
    cleanup() {
      for (const p of procs) p.kill();
      for (const db of dbs) if (db.open) db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Polls pred every 20 ms until it is truthy or ms have passed; its last value.
async function waitFor(pred, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = pred();
    if (v || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Runs a Node script in a child process (cwd: bindings/node, so that
// require('better-sqlite3') and require('.') work). Resolves
// { code, signal, stdout, stderr, timedOut } once it exits, or once ms have
// passed (it is then killed and timedOut is true). onLine(line, child) is
// called for each line of its stdout.
function runChild(script, { ms = 15000, onLine, env } = {}) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['-e', script], {
      cwd: path.join(__dirname, '..'), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '', stderr = '', timedOut = false, pending = '';
    const timer = setTimeout(() => { timedOut = true; p.kill('SIGKILL'); }, ms);
    p.stdout.on('data', (d) => {
      stdout += d;
      pending += d;
      let i;
      while ((i = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        if (onLine) onLine(line, p);
      }
    });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr, timedOut }); });
  });
}

module.exports = { ROOT, SYNCD, SCHEMA, DDL, Database, sqliteSync, workspace, waitFor, runChild };
