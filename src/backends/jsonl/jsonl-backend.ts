/**
 * The zeroclaw-compatible JSONL backend: `<dataDir>/sessions/<sanitizeKey(key)>.jsonl`, one
 * `{"role","content"}` line per message, exactly the bytes zeroclaw writes (jsonl-line.ts).
 *
 * KEYS. zeroclaw's file names are lossy (`slack/thread:1` and `slack_thread_1` share a file), so
 * the raw key is kept in a sidecar (session-sidecar.ts). The rule (session-registry.ts): a session
 * file is owned by the raw key its sidecar names, or, with no such record (a file zeroclaw
 * wrote), by its stem as key. A second, distinct raw key whose file is owned by another key gets
 * KeyCollisionError on every write and nothing is written; reads treat it as an unknown session
 * (null, empty, NotFound).
 * Two keys are never merged. A file name over 255 bytes is a TooLargeError. Not handled: on a
 * case-insensitive filesystem (default macOS and Windows) keys that differ only in case, and
 * are not otherwise changed by sanitising, share one file; serve such workspaces from Linux or
 * from the SQLite backend.
 *
 * SEQ. The 1-based position among readable lines; blank lines are nothing, corrupt lines are
 * skipped and counted (`unreadableCount`) and only `compact` removes them. Seqs are reused after
 * removeLast (capabilities.stableSeq = false). Messages have no times (createdAt null).
 *
 * CONCURRENCY. Writers in sessiongraph processes exclude each other with a per-session advisory
 * lock (file-lock.ts) and an in-process queue, so two of our processes appending to one session
 * never interleave or lose lines, and the expectedLastSeq and clientMessageId checks are exact.
 * zeroclaw takes no lock, so against a zeroclaw process writing the same session at the same time
 * we guarantee less:
 * - an append of ours is one write(2) with O_APPEND, so it never splits a line of zeroclaw's, and
 *   its seqs are right (we locate our bytes after the write). zeroclaw may write one line as two
 *   calls (the JSON, then `\n`): a zeroclaw line found unterminated is terminated first and its
 *   own `\n` later lands as a blank line, both messages intact; but if our write falls exactly
 *   between zeroclaw's two calls, its line and our first line merge into one corrupt line: we
 *   detect that and fail the append with UnavailableError so the client retries (the other lines
 *   of such a batch stay stored, so a retried batch repeats them);
 * - a rewrite of ours (removeLast, compact) copies the file, checks just before the rename that
 *   the file did not change, and retries if it did; a zeroclaw append in the microseconds between
 *   that check and the rename is lost; zeroclaw's own rewrites have the same race against us;
 * - a zeroclaw `/new` (delete) between our lock and our write is indistinguishable from deleting
 *   just before: our append recreates the file;
 * - expectedLastSeq and removeLast's guard see zeroclaw's completed writes, not its in-flight ones.
 * zeroclaw keeps histories in memory and will not see our writes until it reloads.
 *
 * DURABILITY. Like SQLite's synchronous=NORMAL: appends are not fsynced (a power loss may drop the
 * last appends, never corrupt earlier lines); rewrites and a session's first sidecar record are
 * fully durable (temp + fsync + rename + folder fsync).
 *
 * IDEMPOTENCY. A session remembers the clientMessageIds of its last 1,024 to 2,048 appends (the
 * sidecar is pruned to 1,024 once it holds 2,048); an older id is treated as new. The check and
 * the append run under the session's lock. An append with an id records an intent (where its
 * lines go, their length and digest) before writing them and `done` after; the next write under
 * the lock settles an intent a crash left (done if the bytes are at that offset or at a line after
 * it, void if not) before anything can move lines, so a resend after a SIGKILL at any step is
 * stored exactly once. Not told apart: zeroclaw appending the very same bytes between our crash
 * and the settling. A replay whose messages are no longer at their seqs (removed since) is a
 * ConflictError, never an answer naming another message. A session deleted (by us, a TTL cleanup
 * or zeroclaw) takes its ids with it: a retry after that is new. zeroclaw deleting and recreating
 * the file before the retry is not told apart from a removal (the file name is all there is).
 *
 * COSTS. Reads are O(page) once a file's index is built (one full read of the file, on first
 * touch). `sessions()` stats every `*.jsonl` (O(number of files)) and builds the indexes of the
 * sessions on the page. `search()` scans (jsonl-search.ts): linear in the data size.
 *
 * MIGRATION FENCE. When zeroclaw has migrated the workspace to SQLite (migration-fence.ts), every
 * write is a ConflictError; reads still work.
 *
 * OTHER WRITERS. watchExternalChanges (jsonl-watcher.ts) reports what other processes write to
 * the sessions folder; SessionFile tells it about each write of ours, so ours are never reported.
 */

import { createHash } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import {
  AppError,
  ConflictError,
  KeyCollisionError,
  NotFoundError,
  removedSince,
  UnavailableError,
} from '../../errors.js';
import type {
  AppendOptions,
  AppendResult,
  BackendInfo,
  CompactResult,
  ExternalChange,
  ExternalWatch,
  ExternalWatchOptions,
  MessagePageArgs,
  NewMessage,
  Page,
  RemoveLastOptions,
  RemoveLastResult,
  SearchArgs,
  SearchPage,
  SessionBackend,
  SessionInfo,
  SessionPageArgs,
  StoredMessage,
  StoreLimits,
} from '../backend.js';
import { DEFAULT_PAGE_SIZE } from '../backend.js';
import { type BackendOptions, resolveLimits } from '../backend-options.js';
import { toTimestamp } from '../timestamps.js';
import {
  checkSeq,
  validateClientMessageId,
  validateKey,
  validateMessagePage,
  validateMessages,
  validateName,
  validateTtlHours,
} from '../validate.js';
import { removeLeakedTempFiles } from './atomic-rewrite.js';
import { FileLocks } from './file-lock.js';
import { encodeLine } from './jsonl-line.js';
import { searchSessions } from './jsonl-search.js';
import { JsonlWatcher } from './jsonl-watcher.js';
import { codePoints } from './line-index.js';
import { MigrationFence } from './migration-fence.js';
import type { EncodedLine, FileState, SessionFile } from './session-file.js';
import { pageSessions } from './session-listing.js';
import { type SessionPaths, sessionPaths, stemForKey } from './session-paths.js';
import { SessionRegistry } from './session-registry.js';
import {
  IDEMPOTENCY_WINDOW,
  linesDigest,
  type PriorAppend,
  type Sidecar,
  SidecarStore,
} from './session-sidecar.js';

const HOUR_MS = 3_600_000;
/** fs error codes that mean the store is (maybe temporarily) unusable, not a bug. */
const UNAVAILABLE_CODES = new Set([
  'ENOSPC',
  'EDQUOT',
  'EIO',
  'EMFILE',
  'ENFILE',
  'EAGAIN',
  'EBUSY',
  'EROFS',
  'EACCES',
  'EPERM',
]);

export async function openJsonlBackend(options: BackendOptions): Promise<SessionBackend> {
  const paths = sessionPaths(options.dataDir);
  await mkdir(paths.sessionsDir, { recursive: true });
  const leaked =
    (await removeLeakedTempFiles(paths.sessionsDir)) + (await removeLeakedTempFiles(paths.keysDir));
  if (leaked > 0) options.logger?.info({ leaked }, 'removed temp files left by interrupted rewrites');
  return new JsonlBackend(paths, options);
}

class JsonlBackend implements SessionBackend {
  readonly #paths: SessionPaths;
  readonly #limits: StoreLimits;
  readonly #locks: FileLocks;
  readonly #sidecars: SidecarStore;
  readonly #fence: MigrationFence;
  readonly #registry: SessionRegistry;
  readonly #pending = new Set<Promise<unknown>>();
  readonly #logger: BackendOptions['logger'];
  readonly #onAppendStep: BackendOptions['onAppendStep'];
  #watchers: readonly JsonlWatcher[] = [];
  #closed = false;

  constructor(paths: SessionPaths, options: BackendOptions) {
    this.#paths = paths;
    this.#logger = options.logger;
    this.#onAppendStep = options.onAppendStep;
    this.#limits = resolveLimits(options.limits);
    this.#locks = new FileLocks({
      dir: paths.locksDir,
      timeoutMs: options.lockTimeoutMs,
      logger: options.logger,
    });
    this.#sidecars = new SidecarStore(paths.keysDir);
    this.#registry = new SessionRegistry(paths, this.#sidecars, this.#limits, () => this.#watchers);
    this.#fence = new MigrationFence(paths.dbPath);
  }

  info(): BackendInfo {
    return {
      kind: 'jsonl',
      version: 'zeroclaw-jsonl',
      capabilities: { messageTimestamps: false, rankedSearch: false, stableSeq: false },
    };
  }

  append(key: string, messages: NewMessage[], options: AppendOptions = {}): Promise<AppendResult> {
    return this.#run(async () => {
      validateKey(key, this.#limits);
      validateMessages(messages, this.#limits);
      const clientMessageId = validateClientMessageId(options.clientMessageId);
      const expected = options.expectedLastSeq;
      checkSeq(expected, 'expectedLastSeq');
      const stem = stemForKey(key);
      const lines: EncodedLine[] = messages.map((m) => {
        const text = encodeLine(m);
        return { text, bytes: Buffer.byteLength(text, 'utf8'), chars: codePoints(m.content) };
      });
      const hash = requestHash(messages);
      const guard = (state: FileState | null) => {
        if (expected === undefined) return;
        const actual = lastSeqOf(state);
        if (actual !== expected) {
          throw new ConflictError(
            `expected the session's last seq to be ${expected}, but it is ${actual}`,
            expected,
            actual,
          );
        }
      };
      await this.#fence.assertWritable();
      return this.#locks.withLock(stem, async () => {
        // Again under the lock: a migration holds it from staging to archiving the file.
        await this.#fence.assertWritable();
        const file = this.#registry.file(stem);
        const owner = await this.#registry.ownerOf(stem);
        const existing = await file.state();
        if (existing && owner.key !== key) throw collision(key, owner.key, stem);
        let sidecar = existing ? await this.#settle(stem, file, owner.sidecar) : null;
        const step = clientMessageId === undefined ? undefined : this.#onAppendStep;
        step?.('locked');
        if (existing && clientMessageId !== undefined) {
          const prior = sidecar?.appends.get(clientMessageId);
          if (prior && prior.hash !== hash) {
            throw new ConflictError(
              `clientMessageId ${JSON.stringify(clientMessageId)} was used for other messages`,
            );
          }
          if (prior) {
            await assertStillStored(file, prior, messages, clientMessageId);
            return {
              messages: stored(key, prior.firstSeq, messages),
              session: this.#info(key, sidecar, existing),
              replayed: true,
            };
          }
        }
        if (!existing) {
          guard(null);
          sidecar = await this.#registry.create(stem, key, null);
        }
        // With an id, the intent is recorded before the lines: a crash anywhere leaves a record
        // that the next write under this lock settles (done or void) by looking at the file.
        const intent =
          clientMessageId === undefined
            ? undefined
            : async (at: number, bytes: Buffer) => {
                await this.#sidecars.append(stem, {
                  intent: clientMessageId,
                  hash,
                  n: messages.length,
                  at,
                  bytes: bytes.length,
                  sum: linesDigest(bytes),
                });
                step?.('intent-written');
              };
        const { firstSeq, state } = await file.append(lines, guard, intent);
        if (clientMessageId !== undefined) {
          step?.('lines-written');
          await this.#sidecars.append(stem, { done: clientMessageId, seq: firstSeq });
          step?.('recorded');
          // The record count is known without reading the sidecar back; prune only past the window.
          if ((sidecar?.appendRecords ?? 0) + 1 > 2 * IDEMPOTENCY_WINDOW) {
            const full = await this.#sidecars.read(stem);
            if (full) await this.#sidecars.prune(stem, full);
          }
        }
        return {
          messages: stored(key, firstSeq, messages),
          session: this.#info(key, sidecar, state),
          // no previousSeq: a seq is a position, reused after a removal (also by zeroclaw, outside
          // our lock), so "follows seq N" could name a message the feed no longer holds
          replayed: false,
        };
      });
    });
  }

  messages(key: string, args: MessagePageArgs = {}): Promise<Page<StoredMessage>> {
    return this.#run(async () => {
      const { forward, size } = validateMessagePage(args, this.#limits, DEFAULT_PAGE_SIZE);
      const empty = { items: [], hasNextPage: false, hasPreviousPage: false };
      const target = await this.#registry.readable(key);
      if (!target) return empty;
      let hasNextPage = false;
      let hasPreviousPage = false;
      const result = await target.file.read((count) => {
        const lo = Math.max(1, (args.afterSeq ?? 0) + 1);
        const hi = Math.min(count, (args.beforeSeq ?? Number.POSITIVE_INFINITY) - 1);
        if (forward) {
          const to = Math.min(hi, lo + size - 1);
          hasNextPage = to < hi;
          hasPreviousPage = args.afterSeq !== undefined && args.afterSeq >= 1 && count >= 1;
          return { from: lo - 1, to };
        }
        const from = Math.max(lo, hi - size + 1);
        hasPreviousPage = from > lo;
        hasNextPage = args.beforeSeq !== undefined && args.beforeSeq <= count;
        return { from: from - 1, to: hi };
      });
      if (!result) return empty;
      return { items: stored(key, result.from + 1, result.messages), hasNextPage, hasPreviousPage };
    });
  }

  message(key: string, seq: number): Promise<StoredMessage | null> {
    return this.#run(async () => {
      checkSeq(seq, 'seq');
      if (seq < 1) return null;
      const target = await this.#registry.readable(key);
      const result = await target?.file.read(() => ({ from: seq - 1, to: seq }));
      const found = result?.messages[0];
      return found ? stored(key, seq, [found])[0]! : null;
    });
  }

  lastMessages(keys: readonly string[]): Promise<Map<string, StoredMessage>> {
    return this.#run(async () => {
      const out = new Map<string, StoredMessage>();
      for (const key of new Set(keys)) {
        const target = await this.#registry.readable(key);
        const result = await target?.file.read((count) => ({ from: count - 1, to: count }));
        const last = result?.messages[0];
        if (result && last) out.set(key, stored(key, result.from + 1, [last])[0]!);
      }
      return out;
    });
  }

  characterCounts(keys: readonly string[]): Promise<Map<string, number>> {
    return this.#run(async () => {
      const out = new Map<string, number>();
      for (const key of new Set(keys)) {
        const state = await (await this.#registry.readable(key))?.file.state();
        if (state) out.set(key, state.characterCount);
      }
      return out;
    });
  }

  session(key: string): Promise<SessionInfo | null> {
    return this.#run(async () => {
      const target = await this.#registry.readable(key);
      const state = await target?.file.state();
      return target && state ? this.#info(key, target.sidecar, state) : null;
    });
  }

  sessions(args: SessionPageArgs = {}): Promise<Page<SessionInfo>> {
    return this.#run(async () => {
      const listed = (await this.#registry.list()).map((s) => ({
        ...s,
        lastActivityAt: toTimestamp(s.mtimeMs),
      }));
      const page = pageSessions(listed, args, this.#limits);
      const items: SessionInfo[] = [];
      for (const s of page.items) {
        const state = await this.#registry.file(s.stem).state();
        if (state) items.push(this.#info(s.key, await this.#sidecars.read(s.stem), state));
      }
      return { items, hasNextPage: page.hasNextPage, hasPreviousPage: page.hasPreviousPage };
    });
  }

  removeLast(key: string, options: RemoveLastOptions = {}): Promise<RemoveLastResult> {
    return this.#run(async () => {
      validateKey(key, this.#limits);
      const expected = options.expectedLastSeq;
      checkSeq(expected, 'expectedLastSeq');
      const stem = stemForKey(key);
      await this.#fence.assertWritable();
      return this.#locks.withLock(stem, async () => {
        await this.#fence.assertWritable();
        const owner = await this.#registry.ownerOf(stem);
        if (owner.key !== key) throw notFound(key);
        const file = this.#registry.file(stem);
        await this.#settle(stem, file, owner.sidecar);
        const result = await file.removeLast((state) => {
          const actual = lastSeqOf(state);
          if (expected !== undefined && actual !== expected) {
            throw new ConflictError(
              `expected the last message to be seq ${expected}, but it is ${actual}`,
              expected,
              actual,
            );
          }
        });
        if (!result) throw notFound(key);
        const removed = result.removed ? stored(key, result.removed.seq, [result.removed.message])[0]! : null;
        return { removed, session: this.#info(key, owner.sidecar, result.state) };
      });
    });
  }

  compact(key: string): Promise<CompactResult> {
    return this.#run(async () => {
      validateKey(key, this.#limits);
      const stem = stemForKey(key);
      await this.#fence.assertWritable();
      return this.#locks.withLock(stem, async () => {
        await this.#fence.assertWritable();
        const owner = await this.#registry.ownerOf(stem);
        if (owner.key !== key) throw notFound(key);
        const file = this.#registry.file(stem);
        // Compaction moves lines: an unsettled intent's offset must be settled first.
        await this.#settle(stem, file, owner.sidecar);
        const result = await file.compact();
        if (!result) throw notFound(key);
        return { dropped: result.dropped, session: this.#info(key, owner.sidecar, result.state) };
      });
    });
  }

  deleteSession(key: string): Promise<void> {
    return this.#run(async () => {
      validateKey(key, this.#limits);
      const stem = stemForKey(key);
      await this.#fence.assertWritable();
      await this.#locks.withLock(stem, async () => {
        await this.#fence.assertWritable();
        const owner = await this.#registry.ownerOf(stem);
        if (owner.key !== key || !(await this.#registry.file(stem).remove())) throw notFound(key);
        // The session file goes first: a crash in between leaves records that no longer count.
        await this.#sidecars.remove(stem);
        this.#registry.forget(stem);
      });
    });
  }

  renameSession(key: string, name: string | null): Promise<SessionInfo> {
    return this.#run(async () => {
      validateKey(key, this.#limits);
      const clean = validateName(name);
      const stem = stemForKey(key);
      await this.#fence.assertWritable();
      return this.#locks.withLock(stem, async () => {
        await this.#fence.assertWritable();
        const file = this.#registry.file(stem);
        const owner = await this.#registry.ownerOf(stem);
        const existing = await file.state();
        if (existing && owner.key !== key) throw collision(key, owner.key, stem);
        if (!existing) {
          await this.#registry.create(stem, key, clean);
          await file.create();
        } else if (clean !== (owner.sidecar?.name ?? null)) {
          await this.#sidecars.append(stem, { name: clean });
        }
        const state = await file.state();
        if (!state) throw new UnavailableError('the session file vanished while it was being named');
        return this.#info(key, await this.#sidecars.read(stem), state);
      });
    });
  }

  cleanupStale(ttlHours: number): Promise<string[]> {
    return this.#run(async () => {
      validateTtlHours(ttlHours);
      await this.#fence.assertWritable();
      const cutoff = Date.now() - ttlHours * HOUR_MS;
      const removed: string[] = [];
      for (const s of await this.#registry.list()) {
        if (s.mtimeMs >= cutoff) continue;
        await this.#locks.withLock(s.stem, async () => {
          await this.#fence.assertWritable();
          // Re-checked under the lock: a write since the scan makes the session fresh again.
          const now = await stat(this.#paths.fileOf(s.stem), { bigint: true }).catch(() => null);
          if (!now || Number(now.mtimeMs) >= cutoff) return;
          const owner = await this.#registry.ownerOf(s.stem);
          if (!(await this.#registry.file(s.stem).remove())) return;
          await this.#sidecars.remove(s.stem);
          this.#registry.forget(s.stem);
          removed.push(owner.key);
        });
      }
      return removed;
    });
  }

  search(args: SearchArgs): Promise<SearchPage> {
    return this.#run(() => searchSessions(this.#registry, args, this.#limits));
  }

  watchExternalChanges(
    listener: (change: ExternalChange) => void,
    options: ExternalWatchOptions = {},
  ): ExternalWatch {
    if (this.#closed) throw new UnavailableError('the JSONL backend is closed');
    const watcher = new JsonlWatcher(this.#registry, this.#paths, listener, {
      intervalMs: options.intervalMs,
      logger: this.#logger,
    });
    this.#watchers = [...this.#watchers, watcher];
    return {
      close: () => {
        watcher.close();
        this.#watchers = this.#watchers.filter((w) => w !== watcher);
      },
    };
  }

  /** The sessions folder is still there and a folder (a removed one would be recreated by the next write). */
  async ping(): Promise<void> {
    if (this.#closed) throw new UnavailableError('the JSONL backend is closed');
    const dir = this.#paths.sessionsDir;
    const found = await stat(dir).catch((error: unknown) => {
      throw new UnavailableError(`the JSONL store ${dir} cannot be reached: ${(error as Error).message}`);
    });
    if (!found.isDirectory()) throw new UnavailableError(`the JSONL store ${dir} is not a folder`);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const watcher of this.#watchers) watcher.close();
    this.#watchers = [];
    await Promise.allSettled([...this.#pending]);
    await this.#locks.close();
    this.#registry.clear();
  }

  /** Runs an operation: refused after close, awaited by close, fs trouble as UnavailableError. */
  #run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new UnavailableError('the JSONL backend is closed'));
    const task = fn().catch((error: unknown) => {
      throw asAppError(error);
    });
    this.#pending.add(task);
    const forget = () => this.#pending.delete(task);
    task.then(forget, forget);
    return task;
  }

  /**
   * Settles an append that a crash (or a failed write) left announced but unconfirmed: `done` when
   * its lines are in the file, `void` when not. Called under the session's lock before any write,
   * so the file has not been rewritten since the intent. Returns the sidecar as it is after.
   */
  async #settle(stem: string, file: SessionFile, sidecar: Sidecar | null): Promise<Sidecar | null> {
    const pending = sidecar?.pending;
    if (!pending) return sidecar;
    const seq = await file.findWritten(pending.at, pending.bytes, pending.sum);
    await this.#sidecars.append(stem, seq === null ? { void: pending.id } : { done: pending.id, seq });
    return this.#sidecars.read(stem);
  }

  #info(key: string, sidecar: Sidecar | null, state: FileState): SessionInfo {
    return {
      key,
      name: sidecar?.name ?? null,
      createdAt: state.birthtimeMs === null ? null : toTimestamp(state.birthtimeMs),
      lastActivityAt: toTimestamp(state.mtimeMs),
      messageCount: state.messageCount,
      lastSeq: lastSeqOf(state),
      unreadableCount: state.unreadableCount,
    };
  }
}

/**
 * A replay answers the seqs its append was given only while they still hold its messages (seqs
 * are line positions, reused after removeLast): otherwise the messages were removed since, and the
 * retry is refused rather than stored again or pointed at another message.
 */
async function assertStillStored(
  file: SessionFile,
  prior: PriorAppend,
  messages: readonly NewMessage[],
  clientMessageId: string,
): Promise<void> {
  const result = await file.read(() => ({ from: prior.firstSeq - 1, to: prior.firstSeq - 1 + prior.count }));
  const now = result?.messages ?? [];
  const same =
    now.length === messages.length &&
    now.every((m, i) => m.role === messages[i]!.role && m.content === messages[i]!.content);
  if (!same) throw removedSince(clientMessageId, prior.firstSeq, prior.count);
}

function stored(key: string, firstSeq: number, messages: readonly NewMessage[]): StoredMessage[] {
  return messages.map((m, i) => ({
    sessionKey: key,
    seq: firstSeq + i,
    role: m.role,
    content: m.content,
    createdAt: null,
  }));
}

function lastSeqOf(state: FileState | null): number | null {
  return state && state.messageCount > 0 ? state.messageCount : null;
}

function requestHash(messages: readonly NewMessage[]): string {
  return createHash('sha256')
    .update(JSON.stringify(messages.map((m) => [m.role, m.content])))
    .digest('hex')
    .slice(0, 32);
}

function collision(key: string, owner: string, stem: string): KeyCollisionError {
  return new KeyCollisionError(
    `session key ${JSON.stringify(key)} maps to the file ${stem}.jsonl, which belongs to ${JSON.stringify(owner)}`,
    key,
    owner,
  );
}

function notFound(key: string): NotFoundError {
  return new NotFoundError(`no session ${JSON.stringify(key)}`, key);
}

function asAppError(error: unknown): unknown {
  if (error instanceof AppError) return error;
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) {
    return new UnavailableError(`session storage is unavailable (${code}): ${(error as Error).message}`);
  }
  return error;
}
