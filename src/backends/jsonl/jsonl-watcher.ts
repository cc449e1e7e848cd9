/**
 * Finds what other processes (a zeroclaw agent) write to the JSONL sessions folder and reports it
 * as ExternalChanges (backend.ts).
 *
 * WHEN. fs.watch on the sessions folder names the file that changed, usually within a
 * millisecond. It can miss events (a full inotify queue, a network filesystem) or fail outright
 * (past the inotify limits), so a sweep also runs every `intervalMs`, sized so that its cost does
 * not grow with idle sessions (a stat costs about 20 µs of CPU, so statting 10,000 files every
 * second would take a fifth of a core): it stats the folder (a file came or went: read the
 * listing), every file seen changing in the last HOT_MS, and a share of the others so that each is
 * statted at least once per FULL_SWEEP_MS. Nothing is read unless a stat differs.
 *
 * WHAT. A changed file is looked at through its SessionFile (`look`) and compared with the mark
 * kept here (file-watch.ts): grown in place -> appended; its last messages cut -> removed;
 * anything else -> rewritten; gone -> deleted. Files present when watching starts are marked by
 * their stat alone (nothing is read): the first change to one is judged by size, and a rewrite of
 * it is reported as `rewritten`.
 *
 * OUR OWN WRITES. SessionFile tells every watcher how the file looks right before each write of
 * ours (so what others wrote until then is reported first) and right after it, both under the
 * file's mutex, which a look takes too: a look never sees a write of ours half done.
 */

import { type FSWatcher, readdirSync, statSync, watch } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { ExternalChange } from '../backend.js';
import { type FileChange, type FileMark, type FileWatcher, sameStat, statMark } from './file-watch.js';
import { type SessionPaths, stemOfFileName } from './session-paths.js';
import type { SessionRegistry } from './session-registry.js';

const STAT_BATCH = 64;
/** Files seen changing this recently are statted by every sweep. @default 600_000 // milliseconds */
const HOT_MS = 600_000;
/** Every session file is statted at least this often. @default 60_000 // milliseconds */
const FULL_SWEEP_MS = 60_000;

export interface JsonlWatcherOptions {
  /** @default 1_000 // milliseconds between two sweeps */
  intervalMs?: number | undefined;
  logger?: Logger | undefined;
}

export class JsonlWatcher implements FileWatcher {
  readonly #registry: SessionRegistry;
  readonly #paths: SessionPaths;
  readonly #listener: (change: ExternalChange) => void;
  readonly #logger: Logger | undefined;
  readonly #marks = new Map<string, FileMark>();
  /** When each file was last seen changing (by a look or a write of ours), oldest first. */
  readonly #changed = new Map<string, number>();
  /** Stems with a look scheduled but not started: events in the meantime add nothing. */
  readonly #scheduled = new Set<string>();
  readonly #timer: NodeJS.Timeout;
  readonly #intervalMs: number;
  #events: FSWatcher | null = null;
  #sweeping = false;
  /** The folder's mtime at the last listing; its files, for the round-robin share. */
  #folderMtimeNs = -1n;
  #stems: string[] = [];
  #next = 0;
  #closed = false;
  /** Reports go out one after another, in the order the changes were found. */
  #reporting: Promise<void> = Promise.resolve();

  constructor(
    registry: SessionRegistry,
    paths: SessionPaths,
    listener: (change: ExternalChange) => void,
    options: JsonlWatcherOptions,
  ) {
    this.#registry = registry;
    this.#paths = paths;
    this.#listener = listener;
    this.#logger = options.logger;
    this.#intervalMs = options.intervalMs ?? 1_000;
    // Synchronously, so that whatever is written once watchExternalChanges returned is reported.
    const folder = statSync(paths.sessionsDir, { bigint: true, throwIfNoEntry: false });
    if (folder) {
      this.#folderMtimeNs = folder.mtimeNs;
      this.#stems = sessionStems(readdirSync(paths.sessionsDir));
    }
    for (const stem of this.#stems) {
      const st = statSync(paths.fileOf(stem), { bigint: true, throwIfNoEntry: false });
      if (st?.isFile()) this.#marks.set(stem, statMark(st));
    }
    try {
      this.#events = watch(paths.sessionsDir, { persistent: false }, (_event, name) => {
        if (name === null) void this.#sweep();
        else for (const stem of sessionStems([name])) this.#schedule(stem);
      });
      this.#events.on('error', (error) => {
        this.#logger?.warn({ err: error }, 'fs.watch failed; external writes are found by the sweep alone');
        this.#events?.close();
        this.#events = null;
      });
    } catch (error) {
      this.#logger?.warn(
        { err: error },
        'fs.watch is unavailable; external writes are found by the sweep alone',
      );
    }
    this.#timer = setInterval(() => void this.#sweep(), this.#intervalMs);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#events?.close();
    this.#events = null;
  }

  markOf(stem: string): FileMark | undefined {
    return this.#marks.get(stem);
  }

  update(stem: string, mark: FileMark | undefined, changes: FileChange[]): void {
    if (mark) this.#marks.set(stem, mark);
    else this.#marks.delete(stem);
    this.#changed.delete(stem);
    if (mark) this.#changed.set(stem, Date.now());
    if (changes.length === 0 || this.#closed) return;
    this.#reporting = this.#reporting.then(() => this.#report(stem, changes));
  }

  async #report(stem: string, changes: readonly FileChange[]): Promise<void> {
    let sessionKey: string;
    try {
      sessionKey = (await this.#registry.ownerOf(stem)).key;
    } catch (error) {
      this.#logger?.warn({ err: error, stem }, 'cannot tell whose session file changed');
      return;
    }
    for (const change of changes) {
      if (this.#closed) return;
      try {
        this.#listener({ ...change, sessionKey });
      } catch (error) {
        this.#logger?.error({ err: error, change }, 'an external-change listener threw');
      }
    }
  }

  /** Looks at the file soon; events within the same turn of the event loop share one look. */
  #schedule(stem: string): void {
    if (this.#closed || this.#scheduled.has(stem)) return;
    this.#scheduled.add(stem);
    setImmediate(() => {
      this.#scheduled.delete(stem);
      if (this.#closed) return;
      this.#registry
        .file(stem)
        .look(this)
        .catch((error: unknown) =>
          this.#logger?.warn({ err: error, stem }, 'looking at a session file failed'),
        );
    });
  }

  /**
   * Schedules a look at the files that came or went (when the folder's mtime moved) and at those of
   * the recently changed files and of this sweep's share of the others whose stat differs from
   * their mark.
   */
  async #sweep(): Promise<void> {
    if (this.#sweeping || this.#closed) return;
    this.#sweeping = true;
    try {
      const folder = await stat(this.#paths.sessionsDir, { bigint: true }).catch(() => null);
      if (!folder || folder.mtimeNs !== this.#folderMtimeNs) {
        this.#folderMtimeNs = folder?.mtimeNs ?? -1n;
        this.#stems = folder ? sessionStems(await readdir(this.#paths.sessionsDir)) : [];
        const present = new Set(this.#stems);
        for (const stem of this.#stems) if (!this.#marks.has(stem)) this.#schedule(stem);
        for (const stem of this.#marks.keys()) if (!present.has(stem)) this.#schedule(stem);
      }
      await this.#statAll(this.#due());
    } catch (error) {
      this.#logger?.warn({ err: error }, 'sweeping the sessions folder failed');
    } finally {
      this.#sweeping = false;
    }
  }

  /** The files this sweep stats: every recently changed one, and the next share of the rest. */
  #due(): Set<string> {
    const due = new Set<string>();
    const cold = Date.now() - HOT_MS;
    for (const [stem, at] of this.#changed) {
      if (at >= cold) due.add(stem);
      else this.#changed.delete(stem);
    }
    const share = Math.ceil((this.#stems.length * this.#intervalMs) / FULL_SWEEP_MS);
    for (let i = 0; i < share && this.#stems.length > 0; i++) {
      this.#next %= this.#stems.length;
      due.add(this.#stems[this.#next++]!);
    }
    return due;
  }

  async #statAll(stems: Set<string>): Promise<void> {
    const list = [...stems];
    for (let i = 0; i < list.length; i += STAT_BATCH) {
      await Promise.all(
        list.slice(i, i + STAT_BATCH).map(async (stem) => {
          const st = await stat(this.#paths.fileOf(stem), { bigint: true }).catch(() => null);
          const mark = this.#marks.get(stem);
          if (!st || !mark || !sameStat(mark, st)) this.#schedule(stem);
        }),
      );
    }
  }
}

function sessionStems(names: readonly string[]): string[] {
  return names.map(stemOfFileName).filter((stem): stem is string => stem !== null);
}
