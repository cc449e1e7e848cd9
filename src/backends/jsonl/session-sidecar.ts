/**
 * What a `.jsonl` file cannot hold, kept per session in `sessions/.sessiongraph/keys/<hash>.log`:
 * the raw key (zeroclaw's file names are lossy), the session name, and the idempotency records of
 * appends made with a clientMessageId.
 *
 * Each file is an append-only log of JSON records, one per line, each written with one write
 * call; a torn last record (a crash mid-write) is ignored on read and terminated before the next
 * record, like the session files themselves. The file that first names a raw key is written
 * through a durable rewrite (temp + fsync + rename + folder fsync), so a crash can never leave a
 * session file whose raw key was lost. Records only count while `<stem>.jsonl` exists; the session
 * layer resets them when it creates a session.
 *
 * File names are a hash of the stem: short and free of odd characters whatever the key.
 */

import { createHash } from 'node:crypto';
import { type FileHandle, mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { sanitizeKey } from '../keys.js';
import { fsyncDirectory, replaceFile } from './atomic-rewrite.js';

/** How many clientMessageIds a session remembers (the oldest are forgotten beyond it). */
export const IDEMPOTENCY_WINDOW = 1_024;

export interface PriorAppend {
  /** Digest of the request's messages. */
  hash: string;
  firstSeq: number;
  count: number;
}

export interface Sidecar {
  /** The raw key that owns the file, or null: the stem itself. */
  key: string | null;
  name: string | null;
  appends: Map<string, PriorAppend>;
  /** Idempotency records in the file (replaced ids included), to know when to prune. */
  appendRecords: number;
}

export type SidecarRecord =
  | { key: string }
  | { name: string | null }
  | { id: string; hash: string; seq: number; n: number };

export class SidecarStore {
  readonly #dir: string;
  readonly #cache = new Map<string, { ino: bigint; signature: string; parsed: number; value: Sidecar }>();

  /** @param dir the folder of sidecar files, created on first write */
  constructor(dir: string) {
    this.#dir = dir;
  }

  fileName(stem: string): string {
    return `${createHash('sha256').update(stem, 'utf8').digest('hex').slice(0, 32)}.log`;
  }

  #path(stem: string): string {
    return path.join(this.#dir, this.fileName(stem));
  }

  /**
   * The stem's sidecar, or null when it has none. Cached by stat; a file that only grew (records
   * appended) is read from where the last read stopped.
   */
  async read(stem: string): Promise<Sidecar | null> {
    const file = this.#path(stem);
    const cachedBefore = this.#cache.get(stem);
    if (cachedBefore) {
      const st = await stat(file, { bigint: true }).catch(() => null);
      if (st && `${st.ino}:${st.size}:${st.mtimeNs}` === cachedBefore.signature) return cachedBefore.value;
    }
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      this.#cache.delete(stem);
      return null;
    }
    try {
      const st = await handle.stat({ bigint: true });
      const signature = `${st.ino}:${st.size}:${st.mtimeNs}`;
      let cached = this.#cache.get(stem);
      if (cached?.signature === signature) return cached.value;
      const size = Number(st.size);
      if (!cached || cached.ino !== st.ino || size < cached.parsed) {
        cached = { ino: st.ino, signature, parsed: 0, value: emptySidecar() };
      }
      const length = size - cached.parsed;
      const bytes = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await handle.read(bytes, got, length - got, cached.parsed + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      const complete = bytes.lastIndexOf(0x0a, got - 1) + 1;
      // A record torn by a crash (no `\n` yet) is left for the next read, or for ever.
      applyRecords(stem, cached.value, bytes.subarray(0, complete).toString('utf8'));
      cached.parsed += complete;
      cached.signature = signature;
      this.#cache.set(stem, cached);
      return cached.value;
    } finally {
      await handle.close();
    }
  }

  /** Replaces the stem's sidecar durably with `records` (removes it when there are none). */
  async reset(stem: string, records: readonly SidecarRecord[]): Promise<void> {
    this.#cache.delete(stem);
    if (records.length === 0) return this.remove(stem);
    await this.#ensureDir();
    const text = records.map((r) => `${JSON.stringify(r)}\n`).join('');
    await replaceFile(this.#path(stem), (handle) => handle.writeFile(text, 'utf8').then(() => undefined));
  }

  /** Appends one record in one write (no fsync: like an append to the session file). */
  async append(stem: string, record: SidecarRecord): Promise<void> {
    await this.#ensureDir();
    const handle = await open(this.#path(stem), 'a+');
    try {
      const { size } = await handle.stat();
      let prefix = '';
      if (size > 0) {
        const last = Buffer.alloc(1);
        await handle.read(last, 0, 1, size - 1);
        if (last[0] !== 0x0a) prefix = '\n';
      }
      await handle.write(`${prefix}${JSON.stringify(record)}\n`, null, 'utf8');
    } finally {
      await handle.close();
    }
  }

  /** Drops the idempotency records beyond the window, keeping key and name (durable). */
  async prune(stem: string, sidecar: Sidecar): Promise<void> {
    const records: SidecarRecord[] = [];
    if (sidecar.key !== null) records.push({ key: sidecar.key });
    if (sidecar.name !== null) records.push({ name: sidecar.name });
    const kept = [...sidecar.appends].slice(-IDEMPOTENCY_WINDOW);
    for (const [id, a] of kept) records.push({ id, hash: a.hash, seq: a.firstSeq, n: a.count });
    await this.reset(stem, records);
  }

  async remove(stem: string): Promise<void> {
    this.#cache.delete(stem);
    await unlink(this.#path(stem)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }

  /** File names of every sidecar present (see `fileName`). */
  async present(): Promise<Set<string>> {
    return new Set(await readdir(this.#dir).catch(() => [] as string[]));
  }

  async #ensureDir(): Promise<void> {
    const created = await mkdir(this.#dir, { recursive: true });
    if (created !== undefined) {
      // A new folder is itself a directory entry: make it durable before files in it matter.
      await fsyncDirectory(path.dirname(this.#dir));
      await fsyncDirectory(path.dirname(path.dirname(this.#dir)));
    }
  }
}

function emptySidecar(): Sidecar {
  return { key: null, name: null, appends: new Map(), appendRecords: 0 };
}

/** Applies complete record lines (each ending in `\n`) to `sidecar`; unparsable lines are skipped. */
function applyRecords(stem: string, sidecar: Sidecar, text: string): void {
  const lines = text.split('\n');
  lines.pop();
  for (const line of lines) {
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof record !== 'object' || record === null) continue;
    const r = record as Record<string, unknown>;
    if (typeof r.key === 'string') {
      // A key that does not sanitise to this stem cannot own it (a foreign or damaged record).
      if (sanitizeKey(r.key) === stem) sidecar.key = r.key;
    } else if ('name' in r && (typeof r.name === 'string' || r.name === null)) {
      sidecar.name = r.name === '' ? null : r.name;
    } else if (
      typeof r.id === 'string' &&
      typeof r.hash === 'string' &&
      Number.isSafeInteger(r.seq) &&
      Number.isSafeInteger(r.n)
    ) {
      sidecar.appends.delete(r.id);
      sidecar.appends.set(r.id, { hash: r.hash, firstSeq: r.seq as number, count: r.n as number });
      sidecar.appendRecords++;
    }
  }
}
