// Types of the sqlite-sync binding for better-sqlite3 (checked by
// test/types.test.js: tsc --strict --noEmit on test/types/app.ts).
/// <reference types="node" />
import type { Database } from 'better-sqlite3';
import { EventEmitter } from 'node:events';

export const ENV_VAR: 'SQLITE_SYNC_EXTENSION';
export function findExtension(): string;
export function load(db: Database, extensionPath?: string): Sync;

/** An integer is a number when one holds it exactly, else a bigint. */
export type Int = number | bigint;
/** A column value; integers of rows follow the connection: bigint under db.defaultSafeIntegers(true). */
export type Value = null | number | bigint | string | Buffer | Uint8Array;
export type Row = Record<string, Value>;

export interface Pending {
  id: Int; table_name: string; op: 'insert' | 'update' | 'delete';
  pk: Row; data: Row | null; created_at: string; attempts: number; last_error: string | null;
}
export interface Rejected {
  id: Int; table_name: string; op: 'insert' | 'update' | 'delete';
  pk: Row; data: Row | null; reason: string | null; rejected_at: string;
}
export interface Orphan {
  table_name: string; pk: Row; row: Row | null;
  state: 'kept' | 'replace' | 'removed'; noted_at: string;
}
export interface Status {
  state: 'stopped' | 'idle' | 'pushing' | 'pulling' | 'offline' | 'error';
  online: number; pending: number; rejected: number; cursor: string | null;
  sse_connected: number; last_push_at: string | null; last_pull_at: string | null;
  last_error: string | null; next_retry_at: string | null;
  pushed_total: number; pulled_total: number; client_id: string; url: string | null;
  skipped_changes: number;
  /** 1 once the first full sync has completed. */
  first_sync_done: number;
  /** 1 after the server refused the token (401/403), until a new one is set. */
  needs_token: number;
  last_verified_at: string | null; diverged_total: number; last_verify: string | null;
  /** 'worker': this process syncs the file; 'standby': another process does. */
  role: 'worker' | 'standby' | null;
  /** Tables altered without sync_migrate, noticed (and re-captured) when. */
  schema_change: string | null; schema_changed_at: string | null;
  /** What the last resync after the server went back in time did, and when. */
  server_reset: string | null; server_reset_at: string | null;
}
/** 'server': tables the server changed; 'all': local writes too. */
export type WaitScope = 'server' | 'all';
export type TokenProvider = () => string | Promise<string>;

export interface SyncEvents {
  /** Tables changed by the server or by local writes (any connection). */
  change: [tables: string[]];
  /** A failure nobody awaited: the watcher thread, a later token provider call. */
  error: [err: Error];
}

export class Sync extends EventEmitter<SyncEvents> {
  constructor(db: Database, extensionPath: string);
  readonly db: Database;
  readonly extensionPath: string;
  init(url?: string | null, options?: Record<string, unknown>): string;
  track(table: string, options?: { existing?: 'push' | 'keep' | 'server' }): void;
  untrack(table: string): void;
  mutate(table: string, op: 'insert' | 'update' | 'upsert' | 'delete', row: Row): Int | null;
  pending(): number;
  pendingRows(): Pending[];
  rejected(): Rejected[];
  /** Rows the server has not confirmed that are not sent (sync_orphans). */
  orphans(): Orphan[];
  clearRejected(ids?: Int[]): void;
  cursor(): string | null;
  pushBatch(limit?: number): string | null;
  ack(response: string | object): number;
  apply(changes: string | object): number;
  start(): void;
  stop(): void;
  /** Sends what is queued now: the number of mutations the server confirmed. */
  push(): Promise<number>;
  /** Fetches what is new now: the number of changes applied. */
  pull(): Promise<number>;
  online(value?: boolean): boolean;
  config(key: string): string | number | null;
  config(key: string, value: string | number | bigint | boolean | null): string | number | null;
  /** The tables changed since the previous wait(), or null after timeoutMs. */
  wait(timeoutMs: number, scope?: WaitScope): Promise<string[] | null>;
  /** true once the first full sync has completed, false after timeoutMs. */
  waitFirstSync(timeoutMs: number): Promise<boolean>;
  /** Called now, on needs_token and before a JWT's exp; null removes it. */
  setTokenProvider(provider: TokenProvider | null): Promise<void>;
  status(): Status;
  running<T>(fn: (sync: Sync) => T | Promise<T>): Promise<T>;
  unwatch(): Promise<void>;
  close(): Promise<void>;
  [Symbol.dispose](): void;
  [Symbol.asyncDispose](): Promise<void>;
}
