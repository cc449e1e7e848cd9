/**
 * What the SQLite watcher (sqlite-watcher.ts) remembers of each session, and how it compares:
 * the session's metadata row (count, last activity, name) with a fingerprint of the whole
 * metadata table, and the session's last rows (ids and content digests).
 */

import { createHash } from 'node:crypto';
import { BY_KEY, READABLE, type SqliteContext } from './sqlite-context.js';

/** Last rows remembered per session, to tell "its last rows vanished" from other changes. */
export const TAIL_ROWS = 8;

export interface Meta {
  name: string | null;
  count: number;
  lastActivity: string | null;
  /** NAME_SUM of the row, as SQLite computed it. */
  nameSum: number;
}

/** A session's last readable rows, ascending. `complete`: no older readable row exists. */
export interface Tail {
  ids: number[];
  digests: string[];
  complete: boolean;
}

/** What session_metadata holds, summed over its rows: a change to any of it shows here. */
export interface Fingerprint {
  rows: number;
  messages: number;
  names: number;
}

export type MetadataTuple = [
  key: string,
  name: unknown,
  count: number,
  lastActivity: unknown,
  nameSum: number,
];

/** A name's checksum: length, first, middle and last characters (0 for none). */
const NAME_SUM = `coalesce(length(name) * 1000003 + unicode(name) * 1009
  + unicode(substr(name, (length(name) + 1) / 2, 1)) * 31 + unicode(substr(name, -1)), 0)`;

export const ALL_METADATA = `SELECT session_key, name, message_count, last_activity, ${NAME_SUM} FROM session_metadata`;
export const ONE_METADATA = `${ALL_METADATA} WHERE session_key = ?`;
export const RECENT_METADATA = `${ALL_METADATA} INDEXED BY sessiongraph_metadata_last_activity WHERE last_activity >= ?`;
const FINGERPRINT = `SELECT count(*), total(message_count), total(${NAME_SUM}) FROM session_metadata`;
const TAIL = `SELECT id, role, content FROM sessions ${BY_KEY}
  WHERE session_key = ? AND id <= ? AND ${READABLE} ORDER BY id DESC LIMIT ${TAIL_ROWS + 1}`;

/** The session's last TAIL_ROWS readable rows with an id up to `upTo`. */
export function readTail(ctx: SqliteContext, key: string, upTo: number): Tail {
  const rows = ctx.sql(TAIL).raw().all(key, upTo) as Array<[number, string, string]>;
  const complete = rows.length <= TAIL_ROWS;
  if (!complete) rows.pop();
  rows.reverse();
  return { ids: rows.map((r) => r[0]), digests: rows.map((r) => digest(r[1], r[2])), complete };
}

export function readFingerprint(ctx: SqliteContext): Fingerprint {
  const [rows, messages, names] = ctx.sql(FINGERPRINT).raw().get() as [number, number, number];
  return { rows, messages, names };
}

/**
 * Compares a remembered tail with the session's rows now (up to the same id). `[]`: unchanged;
 * the remembered ids that vanished, highest first, when exactly the last rows did; null for any
 * other difference.
 */
export function vanishedTail(was: Tail, now: Tail): number[] | null {
  const start = was.ids[0];
  if (start === undefined) return now.ids.length === 0 ? [] : null;
  let from = now.ids.findIndex((id) => id >= start);
  if (from === -1) from = now.ids.length;
  const kept = now.ids.length - from;
  if (kept > was.ids.length || (was.complete && from > 0)) return null;
  for (let i = 0; i < kept; i++) {
    if (now.ids[from + i] !== was.ids[i] || now.digests[from + i] !== was.digests[i]) return null;
  }
  if (kept === was.ids.length) return [];
  // Every remembered row is gone: older ones may have gone too, unless there were none.
  if (kept === 0 && !was.complete) return null;
  return was.ids.slice(kept).reverse();
}

export function metaOf(row: MetadataTuple): Meta {
  return { name: text(row[1]), count: Number(row[2]), lastActivity: text(row[3]), nameSum: row[4] };
}

export function sameMeta(a: Meta, b: Meta): boolean {
  return a.name === b.name && a.count === b.count && a.lastActivity === b.lastActivity;
}

export function addTo(fingerprint: Fingerprint, meta: Meta, sign: 1 | -1): void {
  fingerprint.rows += sign;
  fingerprint.messages += sign * meta.count;
  fingerprint.names += sign * meta.nameSum;
}

export function sameFingerprint(a: Fingerprint, b: Fingerprint): boolean {
  return a.rows === b.rows && a.messages === b.messages && a.names === b.names;
}

function text(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

function digest(role: string, content: string): string {
  return createHash('sha1').update(role).update('\u0000').update(content).digest('base64');
}
