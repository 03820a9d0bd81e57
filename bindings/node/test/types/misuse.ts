// Compiled by test/types.test.js, which expects exactly the errors marked
// below: the types reject a misuse of the API.
import Database from 'better-sqlite3';
import { load } from '../../index.js';

async function main(): Promise<void> {
  const sync = load(new Database(':memory:'));
  const n: string = sync.pending(); // error: a number
  const p: number = sync.push(); // error: a Promise
  sync.on('change', (tables: number) => tables); // error: string[]
  await sync.wait(100, 'local'); // error: 'server' | 'all'
  await sync.setTokenProvider(() => 42); // error: a string
  console.log(n, p);
}
main();
