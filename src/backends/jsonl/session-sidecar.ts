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
import type { BigIntStats } from 'node:fs';
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

/**
 * An append announced before its lines were written (`intent`), not yet settled by a `done` or
 * `void` record: the process died in between, or is still writing under the session's lock.
 */
export interface PendingAppend {
  id: string;
  hash: string;
  count: number;
  /** Where the first line was to start: the file's size before the write (after a torn-tail `\n`). */
  at: number;
  /** Bytes of the lines, all terminated. */
  bytes: number;
  /** Digest of those bytes (`linesDigest`). */
  sum: string;
}

export interface Sidecar {
  /** The raw key that owns the file, or null: the stem itself. */
  key: string | null;
  name: string | null;
  appends: ReadonlyMap<string, PriorAppend>;
  /** Idempotency records in the file (replaced ids included), to know when to prune. */
  appendRecords: number;
  pending: PendingAppend | null;
}

export type SidecarRecord =
  | { key: string }
  | { name: string | null }
  | { id: string; hash: string; seq: number; n: number }
  | { intent: string; hash: string; n: number; at: number; bytes: number; sum: string }
  | { done: string; seq: number }
  | { void: string };

/** The digest an intent record carries of the lines it announces. */
export function linesDigest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 32);
}

/** Bytes before the parsed end that a cache entry keeps, to tell its file from a new one. */
const FINGERPRINT_BYTES = 64;

/**
 * What was parsed of one sidecar file. Never changed once cached: a read builds a new entry and
 * swaps it in, so overlapping reads (and the awaits inside them) cannot disturb each other.
 */
interface CacheEntry {
  /** `<dev>:<ino>:<birthtime>`: which file this is (an inode number alone may be reused). */
  identity: string;
  /** `identity` plus size and mtime: nothing to read while the file still has it. */
  signature: string;
  /** Bytes parsed: the end of the last complete record. */
  parsed: number;
  /** The bytes just before `parsed`, compared before reading on from there. */
  fingerprint: Buffer;
  value: Sidecar;
}

export class SidecarStore {
  readonly #dir: string;
  readonly #cache = new Map<string, CacheEntry>();

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
   * appended) is read from where the last read stopped. The returned value is never mutated.
   */
  async read(stem: string): Promise<Sidecar | null> {
    const file = this.#path(stem);
    const cachedBefore = this.#cache.get(stem);
    if (cachedBefore) {
      const st = await stat(file, { bigint: true }).catch(() => null);
      if (st && signatureOf(st) === cachedBefore.signature) return cachedBefore.value;
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
      const signature = signatureOf(st);
      const cached = this.#cache.get(stem);
      if (cached?.signature === signature) return cached.value;
      const size = Number(st.size);
      const identity = identityOf(st);
      let base: CacheEntry | null = null;
      if (cached && cached.identity === identity && cached.parsed <= size) {
        const from = cached.parsed - cached.fingerprint.length;
        const now = await readRange(handle, from, cached.fingerprint.length);
        if (now.equals(cached.fingerprint)) base = cached;
      }
      const parsedFrom = base?.parsed ?? 0;
      const bytes = await readRange(handle, parsedFrom, size - parsedFrom);
      const complete = bytes.lastIndexOf(0x0a) + 1;
      // A record torn by a crash (no `\n` yet) is left for the next read, or for ever.
      const value = base ? copySidecar(base.value) : emptySidecar();
      applyRecords(stem, value, bytes.subarray(0, complete).toString('utf8'));
      const parsed = parsedFrom + complete;
      const tail = bytes.subarray(Math.max(0, complete - FINGERPRINT_BYTES), complete);
      const fingerprint = Buffer.concat([base?.fingerprint ?? Buffer.alloc(0), tail]).subarray(
        -FINGERPRINT_BYTES,
      );
      const entry: CacheEntry = { identity, signature, parsed, fingerprint, value };
      // Another read may have cached a newer state of the same file meanwhile: keep the newer.
      const latest = this.#cache.get(stem);
      if (!latest || latest.identity !== identity || latest.parsed <= parsed) this.#cache.set(stem, entry);
      return value;
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

function emptySidecar(): MutableSidecar {
  return { key: null, name: null, appends: new Map(), appendRecords: 0, pending: null };
}

type MutableSidecar = Omit<Sidecar, 'appends'> & { appends: Map<string, PriorAppend> };

function copySidecar(from: Sidecar): MutableSidecar {
  return { ...from, appends: new Map(from.appends) };
}

function signatureOf(st: BigIntStats): string {
  return `${identityOf(st)}:${st.size}:${st.mtimeNs}`;
}

function identityOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.birthtimeNs}`;
}

/** `length` bytes from `position`, or fewer where the file ends first. */
async function readRange(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const bytes = Buffer.alloc(Math.max(0, length));
  let got = 0;
  while (got < bytes.length) {
    const { bytesRead } = await handle.read(bytes, got, bytes.length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return bytes.subarray(0, got);
}

/** Applies complete record lines (each ending in `\n`) to `sidecar`; unparsable lines are skipped. */
function applyRecords(stem: string, sidecar: MutableSidecar, text: string): void {
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
      remember(sidecar, r.id, { hash: r.hash, firstSeq: r.seq as number, count: r.n as number });
    } else if (
      typeof r.intent === 'string' &&
      typeof r.hash === 'string' &&
      typeof r.sum === 'string' &&
      Number.isSafeInteger(r.n) &&
      Number.isSafeInteger(r.at) &&
      Number.isSafeInteger(r.bytes)
    ) {
      sidecar.pending = {
        id: r.intent,
        hash: r.hash,
        count: r.n as number,
        at: r.at as number,
        bytes: r.bytes as number,
        sum: r.sum,
      };
    } else if (typeof r.done === 'string' && Number.isSafeInteger(r.seq)) {
      const pending = sidecar.pending;
      if (pending?.id === r.done) {
        remember(sidecar, pending.id, {
          hash: pending.hash,
          firstSeq: r.seq as number,
          count: pending.count,
        });
        sidecar.pending = null;
      }
    } else if (typeof r.void === 'string') {
      if (sidecar.pending?.id === r.void) sidecar.pending = null;
    }
  }
}

function remember(sidecar: MutableSidecar, id: string, prior: PriorAppend): void {
  sidecar.appends.delete(id);
  sidecar.appends.set(id, prior);
  sidecar.appendRecords++;
}
