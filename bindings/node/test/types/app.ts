// Compiled by test/types.test.js with tsc --strict --noEmit: the API as an
// app in TypeScript uses it. Not run.
import Database from 'better-sqlite3';
import { load, findExtension, ENV_VAR, Sync, type Status, type Pending, type Row } from '../../index.js';

async function main(): Promise<void> {
  const db = new Database('todo.db');
  const sync: Sync = load(db, findExtension());
  const id: string = sync.init('http://127.0.0.1:8080', { batch_size: 100 });
  sync.track('todos');
  sync.on('change', (tables: string[]) => console.log(id, tables.join(',')));
  sync.on('error', (err: Error) => console.error(err.message));
  const row: Row = { id: 'a', title: 'milk', done: 9007199254740993n, data: Buffer.from([1]) };
  const mid = sync.mutate('todos', 'insert', row);
  if (typeof mid === 'bigint' || typeof mid === 'number') console.log(mid);
  const pushed: number = await sync.push();
  const pulled: number = await sync.pull();
  const changed: string[] | null = await sync.wait(1000, 'all');
  const synced: boolean = await sync.waitFirstSync(5000);
  await sync.setTokenProvider(async () => 'token');
  await sync.setTokenProvider(() => 'token');
  await sync.setTokenProvider(null);
  const s: Status = sync.status();
  const needs: number = s.needs_token + s.first_sync_done;
  const rows: Pending[] = sync.pendingRows();
  console.log(pushed, pulled, changed, synced, needs, rows[0]?.data?.title, sync.pending(), sync.online(false), ENV_VAR);
  const n: number = await sync.running(async (x) => x.pending());
  console.log(n, sync.config('batch_size', 50), sync.config('sse', false), sync.config('token'));
  {
    using scoped = load(new Database('other.db'));
    scoped.start();
  }
  {
    await using scoped = load(new Database('third.db'));
    scoped.start();
  }
  await sync.close();
  db.close();
}

main().catch(() => process.exit(1));
