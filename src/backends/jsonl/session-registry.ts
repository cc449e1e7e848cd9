/**
 * Which file, and which raw key, a session key means.
 *
 * zeroclaw's file names are lossy (`slack/thread:1` and `slack_thread_1` share
 * `slack_thread_1.jsonl`), so ownership is decided here, by one rule: a session file is owned by
 * the raw key its sidecar names, or, with no such record (a file zeroclaw wrote), by its stem as
 * key. A key whose file is owned by another key has no session: writes refuse it
 * (KeyCollisionError, in jsonl-backend.ts) and reads do not see it. A session created by us
 * starts its sidecar afresh, so records of a deleted session never leak into a new one.
 *
 * The registry also keeps the SessionFile objects, and with them the line indexes, of the most
 * recently used sessions.
 */

import { readdir, stat } from 'node:fs/promises';
import { AppError } from '../../errors.js';
import type { StoreLimits } from '../backend.js';
import { validateKey } from '../validate.js';
import type { FileWatcher } from './file-watch.js';
import { SessionFile } from './session-file.js';
import { type SessionPaths, stemForKey, stemOfFileName } from './session-paths.js';
import type { Sidecar, SidecarStore } from './session-sidecar.js';

/** Files whose line index stays in memory (the least recently used beyond it are dropped). */
const MAX_INDEXED_FILES = 1_024;
const STAT_BATCH = 64;

export interface ListedSession {
  stem: string;
  /** The owner key. */
  key: string;
  mtimeMs: number;
}

export interface SessionTarget {
  stem: string;
  file: SessionFile;
  sidecar: Sidecar | null;
}

export class SessionRegistry {
  readonly #paths: SessionPaths;
  readonly #sidecars: SidecarStore;
  readonly #limits: StoreLimits;
  readonly #files = new Map<string, SessionFile>();
  readonly #watchers: () => readonly FileWatcher[];

  /** @param watchers the running external-change watchers, told about every write (session-file.ts) */
  constructor(
    paths: SessionPaths,
    sidecars: SidecarStore,
    limits: StoreLimits,
    watchers: () => readonly FileWatcher[] = () => [],
  ) {
    this.#paths = paths;
    this.#sidecars = sidecars;
    this.#limits = limits;
    this.#watchers = watchers;
  }

  /** The SessionFile of a stem (the same object while it is in use). */
  file(stem: string): SessionFile {
    let file = this.#files.get(stem);
    if (file) {
      this.#files.delete(stem);
    } else {
      file = new SessionFile(this.#paths.fileOf(stem), { stem, watchers: this.#watchers });
    }
    this.#files.set(stem, file);
    if (this.#files.size > MAX_INDEXED_FILES) {
      for (const [old, f] of this.#files) {
        if (this.#files.size <= MAX_INDEXED_FILES) break;
        if (f.idle && old !== stem) this.#files.delete(old);
      }
    }
    return file;
  }

  forget(stem: string): void {
    this.#files.delete(stem);
  }

  clear(): void {
    this.#files.clear();
  }

  /** Who owns `stem`'s file (whether or not it exists): the sidecar's raw key, else the stem. */
  async ownerOf(stem: string): Promise<{ key: string; sidecar: Sidecar | null }> {
    const sidecar = await this.#sidecars.read(stem);
    return { key: sidecar?.key ?? stem, sidecar };
  }

  /** The session of a key for reading, or null for a key that cannot have one. */
  async readable(key: string): Promise<SessionTarget | null> {
    let stem: string;
    try {
      validateKey(key, this.#limits);
      stem = stemForKey(key);
    } catch (error) {
      if (error instanceof AppError) return null;
      throw error;
    }
    const owner = await this.ownerOf(stem);
    return owner.key === key ? { stem, file: this.file(stem), sidecar: owner.sidecar } : null;
  }

  /** Starts the sidecar of a session being created by `key` (durably, before its file exists). */
  async create(stem: string, key: string, name: string | null): Promise<Sidecar | null> {
    const ownKey = key === stem ? null : key;
    await this.#sidecars.reset(stem, [
      ...(ownKey === null ? [] : [{ key: ownKey }]),
      ...(name === null ? [] : [{ name }]),
    ]);
    return ownKey === null && name === null
      ? null
      : { key: ownKey, name, appends: new Map(), appendRecords: 0, pending: null };
  }

  /** Every session file with its owner key and mtime: one readdir and one stat per file. */
  async list(): Promise<ListedSession[]> {
    const names = await readdir(this.#paths.sessionsDir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [] as string[];
      throw error;
    });
    const stems = names.map(stemOfFileName).filter((s): s is string => s !== null);
    const sidecars = await this.#sidecars.present();
    const out: ListedSession[] = [];
    for (let i = 0; i < stems.length; i += STAT_BATCH) {
      const batch = await Promise.all(
        stems.slice(i, i + STAT_BATCH).map(async (stem): Promise<ListedSession | null> => {
          // bigint: the same millisecond as SessionInfo reports, so cursors compare exactly.
          const st = await stat(this.#paths.fileOf(stem), { bigint: true }).catch(() => null);
          if (!st?.isFile()) return null;
          const sidecar = sidecars.has(this.#sidecars.fileName(stem))
            ? await this.#sidecars.read(stem)
            : null;
          return { stem, key: sidecar?.key ?? stem, mtimeMs: Number(st.mtimeMs) };
        }),
      );
      for (const s of batch) if (s) out.push(s);
    }
    return out;
  }
}
