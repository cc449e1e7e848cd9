/**
 * Finds the commits other connections make to sessions.db (a zeroclaw agent sharing the store)
 * and reports them as ExternalChanges (backend.ts).
 *
 * WHEN. `PRAGMA data_version` on our own connection moves only when another connection commits
 * (our own commits leave it alone), so it is polled: one cached statement, microseconds, while
 * nothing happens.
 *
 * WHAT. Once it moved, one diff in one read snapshot:
 * - rows with an id above the highest seen are appends, grouped per session (AUTOINCREMENT never
 *   reuses an id, so nothing new hides below it);
 * - session_metadata rows whose last activity reached the latest seen (our index on it: O(changed))
 *   are compared with the copy kept here: zeroclaw's append, update_last and clear all set it to
 *   now. Its other changes (remove_last lowers a count, a delete drops a row, a rename) are caught
 *   by a fingerprint of the whole table (row count, total message count, a checksum of names; one
 *   aggregate in C, 0.2 µs a row on the development machine) that differs from the one expected:
 *   then every row is compared (O(sessions) in JS, 2.5 µs a row). A rename that leaves the name
 *   checksum (length, first, middle and last characters) unchanged goes unseen;
 * - a session whose metadata row appeared, vanished or moved, or that has new rows, is examined;
 * - an examined session's last TAIL_ROWS readable rows (ids and content digests) are compared with
 *   the ones kept from its previous look: exactly the last ones gone -> `removed`; anything else
 *   (zeroclaw's update_last rewrites the last row in place) -> `rewritten`. Tails are kept for the
 *   MAX_TAILS sessions that changed last; a session first seen through a change other than an
 *   append has nothing to compare with and is reported `rewritten`.
 *
 * zeroclaw writes in several autocommit statements, so a diff may land between two of them. An
 * append is reported at its row insert (its metadata upsert then changes nothing we report). A
 * session whose rows are all gone while its metadata still counts messages is halfway through a
 * delete (rows first, then metadata): it is looked at again for up to SETTLE_MS, so that a delete
 * is reported as one `deleted` rather than as removals.
 *
 * OUR OWN WRITES. Every write transaction of ours first catches up with other connections
 * (`beginWrite`, under the write lock, so that nothing of theirs can slip in between), then
 * records what it leaves in the sessions it touched (`stageOwn`), kept once it commits
 * (`endWrite`). A later diff therefore compares against our writes instead of reporting them.
 */

import type { Logger } from 'pino';
import type { ExternalChange } from '../backend.js';
import {
  ALL_METADATA,
  addTo,
  type Fingerprint,
  type Meta,
  type MetadataTuple,
  metaOf,
  ONE_METADATA,
  RECENT_METADATA,
  readFingerprint,
  readTail,
  sameFingerprint,
  sameMeta,
  type Tail,
  vanishedTail,
} from './session-marks.js';
import type { SqliteContext } from './sqlite-context.js';

/** Sessions whose tails are remembered; the least recently changed are forgotten first. */
export const MAX_TAILS = 4_096;
/**
 * How long a session may look halfway through a delete before what it shows is reported.
 * @default 500 // milliseconds
 */
export const SETTLE_MS = 500;

interface MetaMark extends Meta {
  /** The diff that last saw the row; an older value means the row vanished. */
  seen: number;
}

const VERSION = 'PRAGMA data_version';
const MAX_ID = 'SELECT coalesce(max(id), 0) FROM sessions';
const NEW_ROWS = 'SELECT session_key, max(id) FROM sessions WHERE id > ? GROUP BY session_key';

export interface SqliteWatcherOptions {
  /** @default 50 // milliseconds between two looks at data_version */
  intervalMs?: number | undefined;
  logger?: Logger | undefined;
}

export class SqliteWatcher {
  readonly #ctx: SqliteContext;
  readonly #listener: (change: ExternalChange) => void;
  readonly #logger: Logger | undefined;
  readonly #timer: NodeJS.Timeout;
  readonly #meta = new Map<string, MetaMark>();
  readonly #tails = new Map<string, Tail>();
  /** Sessions that look halfway through a delete, with when that was first seen. */
  readonly #settling = new Map<string, number>();
  #closed = false;
  #version: number;
  #maxId: number;
  /** The latest last_activity seen. */
  #latest: string;
  #fingerprint: Fingerprint;
  #generation = 0;
  /** What the write transaction in progress leaves in the sessions it touched. */
  #staged: Map<string, { meta: Meta | undefined; tail: Tail }> | null = null;
  #stagedMaxId = 0;

  constructor(ctx: SqliteContext, listener: (change: ExternalChange) => void, options: SqliteWatcherOptions) {
    this.#ctx = ctx;
    this.#listener = listener;
    this.#logger = options.logger;
    const start = ctx.snapshot(() => {
      let latest = '';
      for (const row of ctx.sql(ALL_METADATA).raw().iterate() as Iterable<MetadataTuple>) {
        const meta = metaOf(row);
        this.#meta.set(row[0], { ...meta, seen: 0 });
        if (meta.lastActivity !== null && meta.lastActivity > latest) latest = meta.lastActivity;
      }
      return {
        version: this.#readVersion(),
        maxId: ctx.sql(MAX_ID).pluck().get() as number,
        latest,
        fingerprint: readFingerprint(this.#ctx),
      };
    });
    this.#version = start.version;
    this.#maxId = start.maxId;
    this.#latest = start.latest;
    this.#fingerprint = start.fingerprint;
    this.#timer = setInterval(() => this.#poll(), options.intervalMs ?? 50);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }

  /** Inside a write transaction of ours, before its work: report what others committed first. */
  beginWrite(): void {
    if (this.#closed) return;
    this.#staged = new Map();
    this.#stagedMaxId = this.#maxId;
    try {
      if (this.#readVersion() !== this.#version) this.#report(this.#diff(Date.now()));
    } catch (error) {
      this.#logger?.warn({ err: error }, 'looking for external changes failed');
    }
  }

  /** Inside the write transaction, after its work: the state it leaves in `keys`. */
  stageOwn(keys: readonly string[]): void {
    const staged = this.#staged;
    if (!staged || keys.length === 0) return;
    try {
      for (const key of keys) {
        const row = this.#ctx.sql(ONE_METADATA).raw().get(key) as MetadataTuple | undefined;
        staged.set(key, {
          meta: row && metaOf(row),
          tail: readTail(this.#ctx, key, Number.MAX_SAFE_INTEGER),
        });
      }
      this.#stagedMaxId = Math.max(this.#stagedMaxId, this.#ctx.sql(MAX_ID).pluck().get() as number);
    } catch (error) {
      // Then our own write may be reported as an external one: a duplicate, never a loss.
      this.#logger?.warn({ err: error }, 'recording our own write for the watcher failed');
    }
  }

  endWrite(committed: boolean): void {
    const staged = this.#staged;
    this.#staged = null;
    if (!committed || !staged) return;
    for (const [key, { meta, tail }] of staged) {
      this.#settling.delete(key);
      const mark = this.#meta.get(key);
      if (mark) addTo(this.#fingerprint, mark, -1);
      if (meta) addTo(this.#fingerprint, meta, 1);
      if (meta?.lastActivity && meta.lastActivity > this.#latest) this.#latest = meta.lastActivity;
      this.#remember(key, meta, tail);
    }
    this.#maxId = Math.max(this.#maxId, this.#stagedMaxId);
  }

  #poll(): void {
    if (this.#closed) return;
    try {
      const now = Date.now();
      if (this.#readVersion() === this.#version && !this.#settleDue(now)) return;
      this.#report(this.#ctx.snapshot(() => this.#diff(now)));
    } catch (error) {
      this.#logger?.warn({ err: error }, 'looking for external changes failed; trying again');
    }
  }

  #readVersion(): number {
    return this.#ctx.sql(VERSION).pluck().get() as number;
  }

  #settleDue(now: number): boolean {
    for (const since of this.#settling.values()) if (now - since >= SETTLE_MS) return true;
    return false;
  }

  #report(changes: readonly ExternalChange[]): void {
    for (const change of changes) {
      if (this.#closed) return;
      try {
        this.#listener(change);
      } catch (error) {
        this.#logger?.error({ err: error, change }, 'an external-change listener threw');
      }
    }
  }

  #diff(now: number): ExternalChange[] {
    const version = this.#readVersion();
    const fromId = this.#maxId;
    let toId = fromId;
    const fresh = new Map<string, number>();
    for (const [key, last] of this.#ctx.sql(NEW_ROWS).raw().iterate(fromId) as Iterable<[string, number]>) {
      fresh.set(key, last);
      if (last > toId) toId = last;
    }
    const candidates = new Map<string, Meta | undefined>();
    const expected = { ...this.#fingerprint };
    let latest = this.#latest;
    for (const row of this.#ctx.sql(RECENT_METADATA).raw().iterate(latest) as Iterable<MetadataTuple>) {
      const meta = metaOf(row);
      if (meta.lastActivity !== null && meta.lastActivity > latest) latest = meta.lastActivity;
      const mark = this.#meta.get(row[0]);
      if (mark && sameMeta(mark, meta)) continue;
      candidates.set(row[0], meta);
      addTo(expected, meta, 1);
      if (mark) addTo(expected, mark, -1);
    }
    const fingerprint = readFingerprint(this.#ctx);
    if (!sameFingerprint(fingerprint, expected)) this.#compareAll(candidates);
    for (const key of [...fresh.keys(), ...this.#settling.keys()]) {
      if (candidates.has(key)) continue;
      const row = this.#ctx.sql(ONE_METADATA).raw().get(key) as MetadataTuple | undefined;
      candidates.set(key, row && metaOf(row));
    }

    const changes: ExternalChange[] = [];
    for (const [key, meta] of candidates) {
      this.#examine(key, meta, fresh.get(key), fromId, toId, now, changes);
    }
    this.#maxId = toId;
    this.#version = version;
    this.#latest = latest;
    this.#fingerprint = fingerprint;
    return changes;
  }

  /** Adds every session whose metadata row differs from its mark, appeared or vanished. */
  #compareAll(candidates: Map<string, Meta | undefined>): void {
    const generation = ++this.#generation;
    for (const row of this.#ctx.sql(ALL_METADATA).raw().iterate() as Iterable<MetadataTuple>) {
      const mark = this.#meta.get(row[0]);
      if (mark) mark.seen = generation;
      const meta = metaOf(row);
      if (!mark || !sameMeta(mark, meta)) candidates.set(row[0], meta);
    }
    for (const [key, mark] of this.#meta) if (mark.seen !== generation) candidates.set(key, undefined);
  }

  /** One session that may have changed: `meta` is its metadata now, `freshTo` its newest new row. */
  #examine(
    key: string,
    meta: Meta | undefined,
    freshTo: number | undefined,
    fromId: number,
    toId: number,
    now: number,
    out: ExternalChange[],
  ): void {
    const before = this.#meta.get(key);
    const tail = this.#tails.get(key);
    const top = readTail(this.#ctx, key, toId);
    if (!meta && top.ids.length === 0) {
      if (before || tail) out.push({ kind: 'deleted', sessionKey: key });
      this.#forget(key);
      return;
    }
    if (meta && meta.count > 0 && top.ids.length === 0 && (before || tail)) {
      const since = this.#settling.get(key) ?? now;
      if (now - since < SETTLE_MS) {
        this.#settling.set(key, since);
        return;
      }
    }
    this.#settling.delete(key);
    if (tail) {
      const vanished = vanishedTail(tail, freshTo === undefined ? top : readTail(this.#ctx, key, fromId));
      if (vanished === null) out.push({ kind: 'rewritten', sessionKey: key });
      else if (vanished.length > 0) out.push({ kind: 'removed', sessionKey: key, seqs: vanished });
    } else if (
      before &&
      freshTo === undefined &&
      (before.count !== meta?.count || before.lastActivity !== meta?.lastActivity)
    ) {
      out.push({ kind: 'rewritten', sessionKey: key });
    }
    if (freshTo !== undefined) {
      out.push({ kind: 'appended', sessionKey: key, afterSeq: fromId, throughSeq: freshTo });
    }
    if (meta && meta.name !== (before?.name ?? null)) {
      out.push({ kind: 'renamed', sessionKey: key, name: meta.name });
    }
    this.#remember(key, meta, top);
  }

  #remember(key: string, meta: Meta | undefined, tail: Tail): void {
    if (meta) this.#meta.set(key, { ...meta, seen: this.#generation });
    else this.#meta.delete(key);
    this.#tails.delete(key);
    this.#tails.set(key, tail);
    if (this.#tails.size > MAX_TAILS) this.#tails.delete(this.#tails.keys().next().value!);
  }

  #forget(key: string): void {
    this.#meta.delete(key);
    this.#tails.delete(key);
    this.#settling.delete(key);
  }
}
