'use strict';
// A to-do list that syncs through syncd.
//
//   server/syncd --listen 127.0.0.1:8080 --schema bindings/todos.sql --db server.db
//   node todo.js a.db http://127.0.0.1:8080 add "buy milk"
//   node todo.js b.db http://127.0.0.1:8080 list        # - [ ] 1a2b3c4d buy milk
//   node todo.js b.db http://127.0.0.1:8080 done 1a2b3c4d
//   node todo.js a.db http://127.0.0.1:8080 watch       # live, until Ctrl-C
const crypto = require('node:crypto');
const Database = require('better-sqlite3');
const sqliteSync = require('..');

const [file, url, cmd = 'list', ...args] = process.argv.slice(2);
const db = new Database(file);
const sync = sqliteSync.load(db);
db.exec(`CREATE TABLE IF NOT EXISTS todos(id TEXT PRIMARY KEY, title TEXT NOT NULL,
         done INTEGER NOT NULL DEFAULT 0, data BLOB)`);
sync.init(url);
sync.track('todos');

function show() {
  for (const t of db.prepare('SELECT id, title, done FROM todos ORDER BY title').all()) {
    console.log(`- [${t.done ? 'x' : ' '}] ${t.id.slice(0, 8)} ${t.title}`);
  }
}

if (cmd === 'add') {
  db.prepare('INSERT INTO todos(id, title) VALUES (?, ?)').run(crypto.randomUUID(), args.join(' '));
} else if (cmd === 'done') {
  db.prepare("UPDATE todos SET done = 1 WHERE id LIKE ? || '%'").run(args[0]);
}

if (cmd === 'watch') {
  sync.start();
  sync.on('change', show);
  show();
  process.on('SIGINT', () => sync.close().then(() => process.exit(0)));
} else {
  (async () => {
    try { // send what is queued, fetch what is new; offline, it all waits in the outbox
      await sync.push();
      await sync.pull();
    } catch (e) {
      console.log(`offline (${e.message}); ${sync.pending()} change(s) queued`);
    }
    show();
    await sync.close();
  })();
}
