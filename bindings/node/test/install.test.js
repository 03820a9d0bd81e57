'use strict';
// After `make install`, an app requires the package by its name, with no
// NODE_PATH, once it is added to the app as the README says:
//   npm install $PREFIX/lib/node_modules/sqlite-sync better-sqlite3@12
// (here without better-sqlite3, which the test takes from this checkout).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { ROOT } = require('../testlib/harness');

test("make install, npm install of the installed folder, require('sqlite-sync')", (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-sync-node-install-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const env = { ...process.env };
  for (const k of ['NODE_PATH', 'SQLITE_SYNC_EXTENSION', 'MAKEFLAGS', 'MFLAGS', 'MAKELEVEL']) delete env[k];
  const prefix = path.join(dir, 'prefix');
  const make = spawnSync('make', ['--no-print-directory', '-C', ROOT, 'install', `PREFIX=${prefix}`], { env, encoding: 'utf8' });
  assert.equal(make.status, 0, make.stdout + make.stderr);
  const app = path.join(dir, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), '{"name": "app", "private": true}\n');
  const npm = spawnSync('npm', ['install', '--offline', '--legacy-peer-deps', '--no-audit', '--no-fund',
    path.join(prefix, 'lib', 'node_modules', 'sqlite-sync')], { cwd: app, env, encoding: 'utf8' });
  assert.equal(npm.status, 0, npm.stdout + npm.stderr);
  const driver = require.resolve('better-sqlite3');
  const run = spawnSync(process.execPath, ['-e', `
    const s = require('sqlite-sync');
    const db = new (require(${JSON.stringify(driver)}))(':memory:');
    s.load(db);
    console.log(s.findExtension(), db.prepare('SELECT sync_wire(1)').pluck().get());`], { cwd: app, env, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), `${path.join(prefix, 'lib', 'sqlite-sync', 'sync.so')} 1`);
});
