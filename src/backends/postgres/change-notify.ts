/**
 * How a write tells the other instances on the same schema what it changed: one `pg_notify` inside
 * the write's transaction, which PostgreSQL delivers to every listener when the transaction
 * commits, in commit order, and never when it rolls back (pg-watcher.ts listens).
 *
 * The payload names the session, the kind of write and the seqs involved, never content: a
 * notification holds under 8000 bytes. A write whose payload would not fit (a very long key)
 * sends an overflow notice instead, and every listener catches up from the store.
 *
 * Every write also stamps the session row with its transaction id (`change_xid`), and a delete
 * leaves a tombstone with it, so a listener whose connection dropped can find, from a snapshot,
 * every session changed since (pg-watcher.ts).
 */

import { createHash } from 'node:crypto';
import type { Queryable } from './pg-runner.js';

/** Who notifies, and where. */
export interface ChangeChannel {
  /** The channel, named after the schema so two deployments on one database do not cross. */
  channel: string;
  /** Tags this backend's notifications, so its watcher can skip its own writes. */
  instanceId: string;
}

/** What one notification says, as sent (short field names keep payloads small). */
export type ChangePayload =
  /** appended: ids a..t exclusive of a; c: the session's message count after. */
  | { o: 'a'; k: string; a: number; t: number; c: number }
  /** removed: the seqs (highest first); c and l: the session's count and last seq after. */
  | { o: 'r'; k: string; s: number[]; c: number; l: number | null }
  | { o: 'c'; k: string }
  | { o: 'd'; k: string }
  /** renamed (also an import's restored record): the name now. */
  | { o: 'n'; k: string; n: string | null }
  /** overflow: a change too large to describe; listeners catch up from the store. */
  | { o: 'x' };

/** A payload as it arrives: tagged with the notifying instance, or a watcher's marker. */
export type Notice = ChangePayload & { i: string; m?: number };

/** PostgreSQL's limit is 8000 bytes; the rest is headroom. */
export const MAX_PAYLOAD_BYTES = 7_900;

/** NAMEDATALEN - 1: a longer channel name would be truncated, and could collide. */
const MAX_CHANNEL_BYTES = 63;

/** The channel of a schema: `sessiongraph_<schema>`, or a prefix and a hash when that is too long. */
export function channelOf(schemaName: string): string {
  const plain = `sessiongraph_${schemaName}`;
  if (Buffer.byteLength(plain) <= MAX_CHANNEL_BYTES) return plain;
  const hash = createHash('sha256').update(schemaName).digest('hex').slice(0, 16);
  return `${plain.slice(0, MAX_CHANNEL_BYTES - 17)}_${hash}`;
}

export function encodeNotice(channel: ChangeChannel, payload: ChangePayload): string {
  const text = JSON.stringify({ i: channel.instanceId, ...payload });
  if (Buffer.byteLength(text) <= MAX_PAYLOAD_BYTES) return text;
  return JSON.stringify({ i: channel.instanceId, o: 'x' });
}

/** Queues the notifications, delivered when the caller's transaction commits. */
export async function notifyChanges(
  q: Queryable,
  channel: ChangeChannel,
  payloads: readonly ChangePayload[],
): Promise<void> {
  if (payloads.length === 0) return;
  const texts = payloads.map((payload) => encodeNotice(channel, payload));
  if (texts.length === 1) {
    await q.query('SELECT pg_notify($1, $2)', [channel.channel, texts[0]]);
    return;
  }
  await q.query('SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS n(p, i) ORDER BY i', [
    channel.channel,
    texts,
  ]);
}

/** The SQL value that stamps a session row or tombstone with the writing transaction. */
export const CHANGE_XID = 'pg_current_xact_id()';
