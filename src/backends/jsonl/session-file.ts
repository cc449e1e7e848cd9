/**
 * One `<stem>.jsonl` file: reads through its LineIndex, appends, and the two rewrites.
 *
 * Every operation opens the file, fstats that handle, syncs the index to it and works on the same
 * handle, under a per-file in-process mutex so that the index and the handle agree; a rewrite by
 * another process (a rename) cannot disturb a read, which keeps reading the inode it opened.
 * Cross-process exclusion for writes is the caller's job (FileLocks).
 */

import type { BigIntStats } from 'node:fs';
import { type FileHandle, open, stat, unlink } from 'node:fs/promises';
import { UnavailableError } from '../../errors.js';
import { AsyncMutex } from '../async-mutex.js';
import type { NewMessage } from '../backend.js';
import { replaceFile } from './atomic-rewrite.js';
import {
  byteAt,
  CHUNK_BYTES,
  copyRange,
  findBytes,
  forEachLine,
  IndexDriftError,
  writeAll,
} from './file-lines.js';
import {
  changesSince,
  type FileMark,
  type FileWatcher,
  markAfterAppend,
  readMark,
  sameStat,
} from './file-watch.js';
import { decodeLine } from './jsonl-line.js';
import { LineIndex, type LineSpan } from './line-index.js';
import { linesDigest } from './session-sidecar.js';

const DRIFT_RETRIES = 3;

export interface FileState {
  messageCount: number;
  unreadableCount: number;
  characterCount: number;
  mtimeMs: number;
  /** null where the filesystem does not report a birth time. */
  birthtimeMs: number | null;
}

/** One message as encoded for the file. */
export interface EncodedLine {
  text: string;
  bytes: number;
  chars: number;
}

/** Who watches a session file for other processes' writes (jsonl-watcher.ts), and as which stem. */
export interface WatchedFile {
  stem: string;
  watchers: () => readonly FileWatcher[];
}

const UNWATCHED: WatchedFile = { stem: '', watchers: () => [] };

export class SessionFile {
  readonly path: string;
  readonly #index = new LineIndex();
  readonly #io = new AsyncMutex();
  readonly #watched: WatchedFile;

  /**
   * @param watched the watchers to tell what this file looks like before and after each write of
   * ours, so that they report only other processes' writes
   */
  constructor(filePath: string, watched: WatchedFile = UNWATCHED) {
    this.path = filePath;
    this.#watched = watched;
  }

  get idle(): boolean {
    return this.#io.idle;
  }

  /** The file's state, or null when it does not exist. */
  async state(): Promise<FileState | null> {
    // One stat when the index already covers the file; open and read only when it changed.
    const fresh = await this.#io.run(async () => {
      const st = await stat(this.path, { bigint: true }).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return null;
        throw error;
      });
      if (st === null) return null;
      return this.#index.covers(st) ? this.#stateOf(st) : undefined;
    });
    if (fresh !== undefined) return fresh;
    return this.#synced('r', async (_handle, st) => this.#stateOf(st));
  }

  /**
   * Reads the readable messages [from, to) (0-based) that `select` picks once the message count
   * is known; null when the file does not exist.
   */
  read(
    select: (count: number) => { from: number; to: number },
  ): Promise<{ state: FileState; from: number; messages: NewMessage[] } | null> {
    return this.#synced('r', async (handle, st) => {
      const { from, to } = select(this.#index.messageCount);
      const messages = await this.#index.read(handle, from, to);
      return { state: this.#stateOf(st), from, messages };
    });
  }

  /** Creates the file empty when absent (zeroclaw lists empty files too). */
  async create(): Promise<void> {
    const handle = await open(this.path, 'a');
    await handle.close();
  }

  /**
   * Appends `lines` in one write call (O_APPEND). An unterminated tail is terminated first, inside
   * that same write, so a torn fragment becomes one corrupt line instead of swallowing the new
   * message. `check` runs on the fresh state first and may throw to refuse; then `beforeWrite` is
   * told where the lines should start and their bytes (all terminated), to record an intent.
   */
  async append(
    lines: readonly EncodedLine[],
    check: (state: FileState) => void,
    beforeWrite?: (at: number, bytes: Buffer) => Promise<void>,
  ): Promise<{ firstSeq: number; state: FileState }> {
    return this.#io.run(async () => {
      const handle = await open(this.path, 'a+');
      try {
        const before = await handle.stat({ bigint: true });
        await this.#index.sync(handle, before);
        await this.#observe(handle, before);
        check(this.#stateOf(before));
        const repair = !this.#index.endsWithNewline;
        const offset = this.#index.size;
        const payload = Buffer.from(`${repair ? '\n' : ''}${lines.map((l) => l.text).join('')}`, 'utf8');
        await beforeWrite?.(offset + (repair ? 1 : 0), payload.subarray(repair ? 1 : 0));
        const { bytesWritten } = await handle.write(payload, 0, payload.length, null);
        if (bytesWritten !== payload.length) {
          await this.#undoShortWrite(handle, offset, bytesWritten);
          throw new UnavailableError(
            `short write (${bytesWritten} of ${payload.length} bytes): is the disk full?`,
          );
        }
        const after = await handle.stat({ bigint: true });
        let at = offset;
        if (Number(after.size) === offset + payload.length) {
          await this.#index.noteAppended(handle, after, offset, repair, lines, payload);
          const texts = lines.map((l) => l.text);
          await this.#markOwn((w) =>
            markAfterAppend(handle, after, this.#index, w.markOf(this.#watched.stem), texts),
          );
        } else {
          // Left unmarked: the watchers will report our lines with theirs (a duplicate, never a loss).
          // zeroclaw takes no lock: another writer appended around us. Find where ours landed.
          await this.#index.sync(handle, after);
          const found = await findBytes(handle, payload, offset, Number(after.size));
          // Without our leading `\n`, landing mid-line (between zeroclaw's JSON and its `\n`)
          // glued our first line to theirs: that line is corrupt now.
          if (found === null || (!repair && found > 0 && (await byteAt(handle, found - 1)) !== 0x0a)) {
            throw new UnavailableError(
              'another writer (zeroclaw takes no lock) wrote into this append; the session may now hold a corrupt line: retry',
            );
          }
          at = found;
        }
        const state = this.#stateOf(after);
        const seq = this.#index.seqAt(at + (repair ? 1 : 0));
        return { firstSeq: seq ?? state.messageCount - lines.length + 1, state };
      } finally {
        await handle.close();
      }
    });
  }

  /**
   * The seq of the first of the lines whose bytes (`length` of them, digest `sum`) start at `at` or
   * at a readable line after it (another process may have appended first), or null when they are
   * nowhere there: how an append announced by an intent record is settled after a crash.
   */
  async findWritten(at: number, length: number, sum: string): Promise<number | null> {
    const found = await this.#synced('r', async (handle) => {
      const { starts, tailStart } = this.#index.snapshot();
      const candidates = [...starts.filter((s) => s >= at)];
      if (tailStart !== null && tailStart >= at) candidates.push(tailStart);
      for (const start of candidates) {
        const bytes = Buffer.alloc(length);
        const { bytesRead } = await handle.read(bytes, 0, length, start);
        if (bytesRead === length && linesDigest(bytes) === sum) return this.#index.seqAt(start);
      }
      return null;
    });
    return found ?? null;
  }

  /**
   * Cuts the last readable line out of the file through an atomic rewrite; every other byte
   * (corrupt lines, unknown fields, a torn tail) is kept. `check` may refuse first.
   */
  removeLast(
    check: (state: FileState) => void,
  ): Promise<{ removed: { seq: number; message: NewMessage } | null; state: FileState } | null> {
    return this.#synced('r', async (handle, st) => {
      await this.#observe(handle, st);
      check(this.#stateOf(st));
      const span = await this.#index.lastLine(handle);
      if (!span) return { removed: null, state: this.#stateOf(st) };
      const seq = this.#index.messageCount;
      const size = this.#index.size;
      const written = await replaceFile(
        this.path,
        async (out) => {
          await copyRange(handle, out, 0, span.start, 0);
          await copyRange(handle, out, span.end, size, span.start);
        },
        { mode: Number(st.mode) & 0o777, beforeRename: () => this.#assertUnchanged(st, size) },
      );
      const state = await this.#adoptRewrite(written, span);
      return { removed: { seq, message: span.message }, state };
    });
  }

  /** Rewrites the file without its corrupt lines; readable and blank lines are kept byte for byte. */
  compact(): Promise<{ dropped: number; state: FileState } | null> {
    return this.#synced('r', async (handle, st) => {
      await this.#observe(handle, st);
      if (this.#index.unreadableCount === 0) return { dropped: 0, state: this.#stateOf(st) };
      const size = this.#index.size;
      let dropped = 0;
      const written = await replaceFile(
        this.path,
        async (out) => {
          dropped = await copyReadable(handle, out, size);
        },
        { mode: Number(st.mode) & 0o777, beforeRename: () => this.#assertUnchanged(st, size) },
      );
      const state = await this.#adoptRewrite(written, null);
      return { dropped, state };
    });
  }

  /** Removes the file; false when it was already gone. */
  async remove(): Promise<boolean> {
    return this.#io.run(async () => {
      this.#index.invalidate();
      try {
        await unlink(this.path);
        for (const w of this.#watched.watchers()) w.update(this.#watched.stem, undefined, []);
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw error;
      }
    });
  }

  /** A watcher's look at the file: tells it what changed since its mark. */
  look(watcher: FileWatcher): Promise<void> {
    return this.#io.run(async () => {
      const before = watcher.markOf(this.#watched.stem);
      const st = await stat(this.path, { bigint: true }).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return null;
        throw error;
      });
      if (st && before && sameStat(before, st)) return;
      const seen = await this.#retryDrift(async () => {
        const opened = await this.#openAndSync('r');
        if (!opened) return null;
        try {
          const now = await readMark(opened.handle, opened.st, this.#index);
          return { now, changes: await changesSince(opened.handle, this.#index, before, now) };
        } finally {
          await opened.handle.close();
        }
      });
      if (seen) watcher.update(this.#watched.stem, seen.now, seen.changes);
      else if (before) watcher.update(this.#watched.stem, undefined, [{ kind: 'deleted' }]);
    });
  }

  /**
   * Visits the raw bytes of every readable line in order, with its seq (search). The index says
   * which lines are readable, so nothing is decoded here; the file is streamed outside the mutex
   * (a long scan does not hold up writers) through the handle the index was synced with.
   * False when the file does not exist.
   */
  async scanReadable(visit: (seq: number, line: Buffer) => void): Promise<boolean> {
    const opened = await this.#io.run(() =>
      this.#retryDrift(async () => {
        const o = await this.#openAndSync('r');
        return o && { handle: o.handle, lines: this.#index.snapshot() };
      }),
    );
    if (!opened) return false;
    const { handle, lines } = opened;
    try {
      let next = 0;
      await forEachLine(handle, 0, lines.size, (bytes, offset) => {
        if (next < lines.starts.length && offset === lines.starts[next]) visit(++next, bytes);
        else if (offset === lines.tailStart) visit(next + 1, bytes);
      });
      return true;
    } finally {
      await handle.close();
    }
  }

  #stateOf(st: BigIntStats): FileState {
    return {
      messageCount: this.#index.messageCount,
      unreadableCount: this.#index.unreadableCount,
      characterCount: this.#index.characterCount,
      mtimeMs: Number(st.mtimeMs),
      birthtimeMs: st.birthtimeNs > 0n ? Number(st.birthtimeMs) : null,
    };
  }

  /** Opens, syncs and runs `fn` under the mutex; retries when the file moved under a read. */
  #synced<T>(flags: string, fn: (handle: FileHandle, st: BigIntStats) => Promise<T>): Promise<T | null> {
    return this.#io.run(() =>
      this.#retryDrift(async () => {
        const opened = await this.#openAndSync(flags);
        if (!opened) return null;
        try {
          return await fn(opened.handle, opened.st);
        } finally {
          await opened.handle.close();
        }
      }),
    );
  }

  /** Opens the file and syncs the index to that handle (under the mutex); null when absent. */
  async #openAndSync(flags: string): Promise<{ handle: FileHandle; st: BigIntStats } | null> {
    let handle: FileHandle;
    try {
      handle = await open(this.path, flags);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    try {
      const st = await handle.stat({ bigint: true });
      await this.#index.sync(handle, st);
      return { handle, st };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async #retryDrift<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        if (!(error instanceof IndexDriftError) || attempt >= DRIFT_RETRIES) throw error;
        this.#index.invalidate();
      }
    }
  }

  async #assertUnchanged(st: BigIntStats, size: number): Promise<void> {
    const now = await stat(this.path, { bigint: true });
    if (now.ino !== st.ino || Number(now.size) !== size) {
      throw new IndexDriftError('the file changed during a rewrite');
    }
  }

  /** Points the index, and the watchers' marks, at the renamed-in file. */
  async #adoptRewrite(written: BigIntStats, removed: LineSpan | null): Promise<FileState> {
    const handle = await open(this.path, 'r');
    try {
      const st = await handle.stat({ bigint: true });
      // `written` is the file as we renamed it in; `st` may already show later appends, which the
      // watchers are left to find (the marks are the file as we wrote it).
      if (st.ino === written.ino && st.dev === written.dev) {
        if (removed) await this.#index.noteRemoved(handle, written, removed);
        else {
          this.#index.invalidate();
          await this.#index.sync(handle, written);
        }
        await this.#markOwn(() => readMark(handle, written, this.#index));
      } else {
        this.#index.invalidate();
      }
      await this.#index.sync(handle, st);
      return this.#stateOf(st);
    } finally {
      await handle.close();
    }
  }

  /** Tells each watcher what changed since its mark (what other processes wrote), before we write. */
  async #observe(handle: FileHandle, st: BigIntStats): Promise<void> {
    for (const watcher of this.#watched.watchers()) {
      const before = watcher.markOf(this.#watched.stem);
      if (before && sameStat(before, st)) continue;
      const now = await readMark(handle, st, this.#index);
      watcher.update(this.#watched.stem, now, await changesSince(handle, this.#index, before, now));
    }
  }

  /** Gives each watcher the file's mark after a write of ours: nothing to report. */
  async #markOwn(markFor: (watcher: FileWatcher) => Promise<FileMark>): Promise<void> {
    for (const watcher of this.#watched.watchers()) {
      watcher.update(this.#watched.stem, await markFor(watcher), []);
    }
  }

  async #undoShortWrite(handle: FileHandle, offset: number, written: number): Promise<void> {
    this.#index.invalidate();
    const now = await handle.stat();
    if (now.size === offset + written) await handle.truncate(offset);
  }
}

/** Copies every line except the corrupt ones; returns how many were dropped. */
async function copyReadable(from: FileHandle, to: FileHandle, size: number): Promise<number> {
  let dropped = 0;
  let out: Buffer[] = [];
  let pending = 0;
  let at = 0;
  const flush = async () => {
    const bytes = Buffer.concat(out);
    await writeAll(to, bytes, at);
    at += bytes.length;
    out = [];
    pending = 0;
  };
  await forEachLine(
    from,
    0,
    size,
    (bytes) => {
      if (decodeLine(bytes).kind === 'corrupt') {
        dropped++;
        return;
      }
      out.push(bytes, NEWLINE);
      pending += bytes.length + 1;
    },
    async () => {
      if (pending >= CHUNK_BYTES) await flush();
    },
  );
  await flush();
  return dropped;
}

const NEWLINE = Buffer.from('\n');
