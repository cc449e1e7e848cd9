/**
 * The SQLite backend's side of `watchExternalChanges`: the running watchers (sqlite-watcher.ts)
 * and the write hooks that keep them from reporting our own writes.
 *
 * Which sessions a write of ours touched is recorded by TEMP triggers into a TEMP table: temp
 * objects exist only on this connection, so zeroclaw never sees them and other connections' writes
 * never fire them. They are created with the first watcher and dropped with the last, so a
 * backend nobody watches writes exactly as before.
 */

import type { Logger } from 'pino';
import type { ExternalChange, ExternalWatch, ExternalWatchOptions } from '../backend.js';
import type { SqliteContext } from './sqlite-context.js';
import { SqliteWatcher } from './sqlite-watcher.js';
import type { WriteHooks } from './write-queue.js';

const OWN_WRITES = 'temp.sessiongraph_own_writes';

/**
 * [table, event, row whose key is recorded]: every way a write of ours can change a session. The
 * trigger body avoids a conflict rather than ignoring it: inside an UPSERT (our append's metadata
 * statement) the outer statement's conflict handling would override an `OR IGNORE`.
 */
const TRIGGERS = [
  ['sessions', 'INSERT', 'new'],
  ['sessions', 'DELETE', 'old'],
  ['sessions', 'UPDATE', 'old'],
  ['session_metadata', 'INSERT', 'new'],
  ['session_metadata', 'DELETE', 'old'],
  ['session_metadata', 'UPDATE', 'old'],
] as const;

const triggerName = (table: string, event: string) => `sessiongraph_own_${table}_${event.toLowerCase()}`;

const INSTALL = [
  `CREATE TEMP TABLE IF NOT EXISTS ${OWN_WRITES} (session_key TEXT PRIMARY KEY) WITHOUT ROWID;`,
  ...TRIGGERS.map(
    ([table, event, row]) => `CREATE TEMP TRIGGER IF NOT EXISTS ${triggerName(table, event)}
      AFTER ${event} ON main.${table} BEGIN
        INSERT INTO ${OWN_WRITES} (session_key) SELECT ${row}.session_key
          WHERE NOT EXISTS (SELECT 1 FROM ${OWN_WRITES} WHERE session_key = ${row}.session_key);
      END;`,
  ),
].join('\n');

const UNINSTALL = [
  ...TRIGGERS.map(([table, event]) => `DROP TRIGGER IF EXISTS temp.${triggerName(table, event)};`),
  `DROP TABLE IF EXISTS ${OWN_WRITES};`,
].join('\n');

export interface WatchHub {
  /** For createWriteQueue: every write transaction runs through them. */
  readonly hooks: WriteHooks;
  watch(listener: (change: ExternalChange) => void, options?: ExternalWatchOptions): ExternalWatch;
  /** Stops every watcher (the backend is closing). */
  close(): void;
}

export function createWatchHub(ctx: SqliteContext, logger?: Logger): WatchHub {
  const watchers = new Set<SqliteWatcher>();

  function takeOwnWrites(): string[] {
    const keys = ctx.sql(`SELECT session_key FROM ${OWN_WRITES}`).pluck().all() as string[];
    if (keys.length > 0) ctx.sql(`DELETE FROM ${OWN_WRITES}`).run();
    return keys;
  }

  function stop(watcher: SqliteWatcher): void {
    watcher.close();
    if (!watchers.delete(watcher) || watchers.size > 0) return;
    ctx.db.exec(UNINSTALL);
  }

  return {
    hooks: {
      begin() {
        for (const w of watchers) w.beginWrite();
      },
      beforeCommit() {
        if (watchers.size === 0) return;
        const keys = takeOwnWrites();
        for (const w of watchers) w.stageOwn(keys);
      },
      end(committed) {
        for (const w of watchers) w.endWrite(committed);
      },
    },

    watch(listener, options = {}) {
      if (watchers.size === 0) ctx.db.exec(INSTALL);
      const watcher = new SqliteWatcher(ctx, listener, { intervalMs: options.intervalMs, logger });
      watchers.add(watcher);
      return { close: () => stop(watcher) };
    },

    close() {
      for (const w of [...watchers]) stop(w);
    },
  };
}
