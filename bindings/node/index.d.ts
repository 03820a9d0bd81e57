// Types of the sqlite-sync binding for better-sqlite3.
import type { Database } from 'better-sqlite3';
import { EventEmitter } from 'node:events';

export const ENV_VAR: 'SQLITE_SYNC_EXTENSION';
export function findExtension(): string;
export function load(db: Database, extensionPath?: string): Sync;

export type Value = null | number | bigint | string | Buffer | Uint8Array;
export type Row = Record<string, Value>;

export interface Pending {
  id: number; table_name: string; op: 'insert' | 'update' | 'delete';
  pk: Row; data: Row | null; created_at: string; attempts: number; last_error: string | null;
}
export interface Rejected {
  id: number; table_name: string; op: 'insert' | 'update' | 'delete';
  pk: Row; data: Row | null; reason: string | null; rejected_at: string;
}
export interface Status {
  state: 'stopped' | 'idle' | 'pushing' | 'pulling' | 'offline' | 'error';
  online: number; pending: number; rejected: number; cursor: string | null;
  sse_connected: number; last_push_at: string | null; last_pull_at: string | null;
  last_error: string | null; next_retry_at: string | null;
  pushed_total: number; pulled_total: number; client_id: string; url: string | null;
  skipped_changes: number;
}

export class Sync extends EventEmitter {
  readonly db: Database;
  init(url?: string | null, options?: Record<string, unknown>): string;
  track(table: string): void;
  untrack(table: string): void;
  mutate(table: string, op: 'insert' | 'update' | 'upsert' | 'delete', row: Row): number | null;
  pending(): number;
  pendingRows(): Pending[];
  rejected(): Rejected[];
  clearRejected(ids?: number[]): void;
  cursor(): string | null;
  pushBatch(limit?: number): string | null;
  ack(response: string | object): number;
  apply(changes: string | object): number;
  start(): void;
  stop(): void;
  push(): number;
  pull(): number;
  online(value?: boolean): boolean;
  config(key: string): string | number | null;
  config(key: string, value: string | number | null): string | number | null;
  wait(timeoutMs: number): string[] | null;
  status(): Status;
  running<T>(fn: (sync: Sync) => T | Promise<T>): Promise<T>;
  unwatch(): Promise<void>;
  close(): Promise<void>;
  on(event: 'change', listener: (tables: string[]) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}
