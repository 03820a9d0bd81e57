'use strict';
// The 'change' event's thread: its own connection to the database file,
// looping on sync_wait(pollMs) until flags[0] is set. flags[1] tells the
// main thread that the connection is open (1) or could not be (2).
const { parentPort, workerData } = require('node:worker_threads');
const { file, extension, driver, flags, pollMs } = workerData;

let db;
try {
  try {
    const Database = require(driver);
    db = new Database(file, { fileMustExist: true, timeout: 10000 });
    db.loadExtension(extension);
    Atomics.store(flags, 1, 1);
  } finally {
    if (Atomics.load(flags, 1) === 0) Atomics.store(flags, 1, 2);
    Atomics.notify(flags, 1);
  }
  const wait = db.prepare('SELECT sync_wait(?)').pluck();
  while (Atomics.load(flags, 0) === 0) {
    const r = wait.get(BigInt(pollMs));
    if (r != null && Atomics.load(flags, 0) === 0) parentPort.postMessage({ tables: JSON.parse(r) });
  }
} catch (e) {
  parentPort.postMessage({ error: String(e && e.message ? e.message : e) });
} finally {
  if (db) db.close();
}
