/**
 * Hears what OTHER sessiongraph instances write to the same PostgreSQL schema and reports it as
 * ExternalChanges (backend.ts), so that instances without a shared Redis still feed each other's
 * live subscribers (events/watch.ts publishes the changes).
 *
 * WHEN. Every write notifies in its transaction (change-notify.ts); PostgreSQL delivers the
 * notification when the write commits, in commit order, to a connection of its own here that
 * LISTENs outside the pool. Notifications tagged with this backend's instance id are its own
 * writes, which the mutations publish (publishing-backend.ts): they are skipped.
 *
 * NOTHING MISSED. A notification sent while the listening connection is down is gone. So the
 * watcher keeps a catch-up point: a snapshot (`pg_current_snapshot()`) such that every write
 * committed after it has either been heard or can be found in the store, where each write stamps
 * its session row with its transaction id (`change_xid`) and each delete leaves a tombstone.
 * - On connecting, the snapshot is taken before LISTEN: a write committed after it is heard, or
 *   found by the next catch-up.
 * - Every `intervalMs`, the connection takes a snapshot and then notifies a marker to itself.
 *   Notifications arrive in commit order, so once the marker is back, every write visible in the
 *   snapshot has been heard: the snapshot becomes the catch-up point. A marker that does not come
 *   back by the next beat means the connection is stuck: it is dropped.
 * - After a reconnect (backoff from `minBackoffMs` doubling to `maxBackoffMs`, with jitter), LISTEN
 *   first, then every session whose last change is not visible in the catch-up point is reported
 *   `rewritten` (subscribers get a SessionReset and refetch: what exactly changed is not known),
 *   every tombstone past it `deleted`. Notifications heard meanwhile wait until that is reported.
 * A write whose notification would not fit PostgreSQL's 8000 bytes sends an overflow notice,
 * answered by the same catch-up.
 */

import pg from 'pg';
import type { Logger } from 'pino';
import type { ExternalChange } from '../backend.js';
import type { ChangeChannel } from './change-notify.js';
import type { PgTables } from './pg-context.js';

export interface PgWatcherOptions {
  /** How to connect: the pool's settings; the watcher opens one connection of its own. */
  config: pg.ClientConfig;
  t: PgTables;
  changes: ChangeChannel;
  listener: (change: ExternalChange) => void;
  logger?: Logger | undefined;
  /** @default 5_000 // milliseconds between two checks of the listening connection */
  intervalMs?: number | undefined;
  /** @default 100 // milliseconds before the first reconnect attempt */
  minBackoffMs?: number | undefined;
  /** @default 5_000 // milliseconds between reconnect attempts at most */
  maxBackoffMs?: number | undefined;
}

const SNAPSHOT = 'SELECT pg_current_snapshot()::text AS snap';

/**
 * Limits on the listening connection, so that one that stops answering is given up: its handshake,
 * and each of its queries (a catch-up reads at most the sessions changed while it was away).
 */
const CONNECT_TIMEOUT_MS = 10_000;
const QUERY_TIMEOUT_MS = 30_000;

/** Sessions changed, and sessions deleted, by transactions the snapshot $1 does not see. */
function catchUpSql(t: PgTables): string {
  const after = (column: string) =>
    `${column} >= pg_snapshot_xmin($1::pg_snapshot) AND NOT pg_visible_in_snapshot(${column}, $1::pg_snapshot)`;
  return `SELECT key, true AS present FROM ${t.sessions} WHERE ${after('change_xid')}
    UNION ALL
    SELECT d.key, false FROM ${t.deleted} AS d
    WHERE ${after('d.change_xid')} AND NOT EXISTS (SELECT 1 FROM ${t.sessions} AS s WHERE s.key = d.key)`;
}

/** A notification's payload as parsed: checked field by field, it may come from another version. */
type Notice = { readonly [field: string]: unknown };

const ignore = () => {};

export class PgWatcher {
  readonly #options: PgWatcherOptions;
  readonly #listen: string;
  readonly #catchUp: string;
  #client: pg.Client | null = null;
  #closed = false;
  /** The catch-up point; null until the first connection listens. */
  #safe: string | null = null;
  /** Notices heard while catching up, reported after it; null when not catching up. */
  #held: Notice[] | null = null;
  #beat: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #attempt = 0;
  /** Snapshots taken before each marker was sent, by marker number. */
  readonly #markers = new Map<number, string>();
  #lastMarker = 0;
  /** The marker sent and not back yet. */
  #awaited: number | null = null;

  constructor(options: PgWatcherOptions) {
    this.#options = options;
    this.#listen = `LISTEN ${pg.escapeIdentifier(options.changes.channel)}`;
    this.#catchUp = catchUpSql(options.t);
    void this.#connect();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    clearInterval(this.#beat);
    const client = this.#client;
    this.#client = null;
    client?.end().catch(ignore);
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    const client = new pg.Client({
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
      keepAlive: true,
      ...this.#options.config,
    });
    this.#client = client;
    client.on('error', (error) => this.#lost(client, error));
    client.on('end', () => this.#lost(client, new Error('the listening connection ended')));
    client.on('notification', (message) => {
      if (this.#client === client && message.channel === this.#options.changes.channel) {
        this.#receive(client, message.payload);
      }
    });
    try {
      await client.connect();
      const before = (await client.query<{ snap: string }>(SNAPSHOT)).rows[0]!.snap;
      await client.query(this.#listen);
      const missed = this.#safe;
      if (missed !== null) await this.#catchUpFrom(client, missed);
      if (this.#client !== client) return;
      this.#safe = before;
      if (this.#attempt > 0) this.#options.logger?.info('listening to other instances again; caught up');
      this.#attempt = 0;
      this.#markers.clear();
      this.#awaited = null;
      this.#beat = setInterval(() => void this.#heartbeat(client), this.#options.intervalMs ?? 5_000);
      this.#beat.unref();
    } catch (error) {
      this.#lost(client, error);
    }
  }

  #lost(client: pg.Client, error: unknown): void {
    if (this.#client !== client) return;
    this.#client = null;
    this.#held = null;
    clearInterval(this.#beat);
    client.end().catch(ignore);
    if (this.#closed) return;
    const min = this.#options.minBackoffMs ?? 100;
    const max = this.#options.maxBackoffMs ?? 5_000;
    const delay = Math.min(max, min * 2 ** this.#attempt) * (0.5 + Math.random() / 2);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    this.#options.logger?.warn(
      { err: error, retryInMs: Math.round(delay) },
      'lost the connection listening to other instances; reconnecting, then catching up',
    );
    this.#retry = setTimeout(() => void this.#connect(), delay);
    this.#retry.unref();
  }

  async #heartbeat(client: pg.Client): Promise<void> {
    if (this.#client !== client || this.#held !== null) return;
    if (this.#awaited !== null) {
      this.#lost(client, new Error('the listening connection did not hear its own marker back'));
      return;
    }
    const marker = ++this.#lastMarker;
    this.#awaited = marker;
    try {
      const snap = (await client.query<{ snap: string }>(SNAPSHOT)).rows[0]!.snap;
      this.#markers.set(marker, snap);
      const { channel, instanceId } = this.#options.changes;
      await client.query('SELECT pg_notify($1, $2)', [channel, JSON.stringify({ i: instanceId, m: marker })]);
    } catch (error) {
      this.#lost(client, error);
    }
  }

  #receive(client: pg.Client, payload: string | undefined): void {
    let notice: Notice;
    try {
      notice = JSON.parse(payload ?? '') as Notice;
    } catch {
      this.#options.logger?.warn({ payload }, 'ignored a notification that is not ours');
      return;
    }
    if (typeof notice !== 'object' || notice === null) return;
    if (notice.i === this.#options.changes.instanceId) {
      if (typeof notice.m === 'number') this.#markerBack(notice.m);
      return;
    }
    if (notice.m !== undefined) return; // another instance's marker
    if (this.#held) {
      this.#held.push(notice);
      return;
    }
    this.#handle(client, notice);
  }

  #markerBack(marker: number): void {
    const snap = this.#markers.get(marker);
    if (snap === undefined) return;
    if (this.#awaited === marker) this.#awaited = null;
    // Notices held during a catch-up are not reported yet: the point must not pass them.
    if (this.#held !== null) return;
    this.#safe = snap;
    for (const n of this.#markers.keys()) if (n <= marker) this.#markers.delete(n);
  }

  #handle(client: pg.Client, notice: Notice): void {
    if (notice.o === 'x') {
      const from = this.#safe;
      if (from === null) return;
      this.#catchUpFrom(client, from).catch((error: unknown) => this.#lost(client, error));
      return;
    }
    const change = changeOf(notice);
    if (change) this.#report(change);
    else this.#options.logger?.warn({ notice }, 'ignored a change notification it cannot read');
  }

  /** Reports what changed after the snapshot `from`, then what was heard meanwhile. */
  async #catchUpFrom(client: pg.Client, from: string): Promise<void> {
    this.#held ??= [];
    const { rows } = await client.query<{ key: string; present: boolean }>(this.#catchUp, [from]);
    if (this.#client !== client) return;
    for (const row of rows) {
      this.#report({ kind: row.present ? 'rewritten' : 'deleted', sessionKey: row.key });
    }
    const held = this.#held;
    this.#held = null;
    for (const notice of held) this.#handle(client, notice);
    if (rows.length > 0)
      this.#options.logger?.info({ sessions: rows.length }, 'caught up with other instances');
  }

  #report(change: ExternalChange): void {
    if (this.#closed) return;
    try {
      this.#options.listener(change);
    } catch (error) {
      this.#options.logger?.error({ err: error, change }, 'an external-change listener threw');
    }
  }
}

const isSeq = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

/** The change a notice describes; null for a notice this version cannot read. */
export function changeOf(notice: Notice): ExternalChange | null {
  if (typeof notice.k !== 'string') return null;
  const sessionKey = notice.k;
  switch (notice.o) {
    case 'a':
      if (!isSeq(notice.a) || !isSeq(notice.t) || !isSeq(notice.c)) return null;
      return {
        kind: 'appended',
        sessionKey,
        afterSeq: notice.a,
        throughSeq: notice.t,
        after: { messageCount: notice.c, lastSeq: notice.t },
      };
    case 'r':
      if (!Array.isArray(notice.s) || !notice.s.every(isSeq) || !isSeq(notice.c)) return null;
      if (notice.l !== null && !isSeq(notice.l)) return null;
      return {
        kind: 'removed',
        sessionKey,
        seqs: notice.s as number[],
        after: { messageCount: notice.c, lastSeq: notice.l },
      };
    case 'c':
      return { kind: 'compacted', sessionKey };
    case 'd':
      return { kind: 'deleted', sessionKey };
    case 'n':
      if (notice.n !== null && typeof notice.n !== 'string') return null;
      return { kind: 'renamed', sessionKey, name: notice.n };
    default:
      return null;
  }
}
