'use strict';
// index.d.ts type-checks under tsc --strict with the declared @types
// packages (devDependencies), describes the API as test/types/app.ts uses
// it, and rejects the misuses in test/types/misuse.ts.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

function tsc(project) {
  const bin = path.join(path.dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
  return spawnSync(process.execPath, [bin, '-p', path.join(__dirname, 'types', project)], { encoding: 'utf8' });
}

test('tsc --strict --noEmit accepts an app using the API', () => {
  const r = tsc('tsconfig.json');
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('tsc --strict rejects misuses of the API', () => {
  const r = tsc('tsconfig.misuse.json');
  const lines = r.stdout.split('\n').filter((l) => /^misuse\.ts\(\d+,\d+\): error/.test(l.replace(/^.*types[\\/]/, '')));
  assert.deepEqual(lines.map((l) => l.replace(/^.*misuse\.ts\((\d+),\d+\): error (TS\d+).*$/, '$1 $2')),
    ['8 TS2322', '9 TS2322', '10 TS2345', '11 TS2345', '12 TS2345'], r.stdout);
});
