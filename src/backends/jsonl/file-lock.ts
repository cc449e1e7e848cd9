/**
 * Cross-process advisory locks, one per session: `<locks dir>/<name>.lock`.
 *
 * Taking a lock first queues on an in-process mutex (shared by every backend in this process, so
 * our own calls wait in line instead of spinning), then creates the lock file atomically with
 * `link(2)` from a small per-instance owner file that holds `<pid> <start time> <token>`: the lock
 * file never exists without its owner identity, even if the process dies mid-call. A lock whose
 * owner process has exited (pid gone, or pid reused by a process with another start time) is stale
 * and broken; breaking happens under a second `.break` lock so that two waiters cannot both break
 * it and then both enter. Waiting longer than the timeout is an UnavailableError.
 *
 * The lock is advisory: only sessiongraph processes take it. zeroclaw does not (see jsonl-backend.ts).
 * Filesystems without hard links fall back to `O_CREAT|O_EXCL` plus a write.
 */

import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { UnavailableError } from '../../errors.js';
import { KeyedMutex } from '../async-mutex.js';
import { isIdentityAlive, SELF_IDENTITY } from './process-liveness.js';

/** Every lock path of this process, whatever backend instance asks for it. */
const inProcess = new KeyedMutex();

const OWNER_PREFIX = 'owner-';
/** A lock file with no readable owner is left alone this long (a foreign writer may be mid-write). */
const UNOWNED_GRACE_MS = 10_000;
const MAX_POLL_MS = 20;
/** Longer names are hashed: `<name>.lock.break` must fit in a 255-byte file name. */
const MAX_READABLE_NAME_BYTES = 200;

function hashName(name: string): string {
  return `h-${createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 40)}`;
}

export interface FileLocksOptions {
  /** The folder that holds the lock files; created on first use. */
  dir: string;
  /** @default 5_000 // milliseconds to wait, in-process queue included */
  timeoutMs?: number | undefined;
  logger?: Logger | undefined;
}

export type Unlock = () => Promise<void>;

interface Holder {
  ino: bigint;
  identity: string;
  mtimeMs: number;
}

export class FileLocks {
  readonly #dir: string;
  readonly #timeoutMs: number;
  readonly #logger: Logger | undefined;
  readonly #identity = `${SELF_IDENTITY} ${randomBytes(6).toString('hex')}`;
  /** lock path -> inode of the lock file we created there. */
  readonly #held = new Map<string, bigint>();
  #owner: Promise<{ path: string; ino: bigint }> | null = null;

  constructor(options: FileLocksOptions) {
    this.#dir = path.resolve(options.dir);
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    this.#logger = options.logger;
  }

  async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const unlock = await this.acquire(name);
    try {
      return await fn();
    } finally {
      await unlock();
    }
  }

  /** The lock file of `name`: readable for usual names, hashed where `.lock.break` would not fit. */
  pathOf(name: string): string {
    const file = Buffer.byteLength(name, 'utf8') <= MAX_READABLE_NAME_BYTES ? name : hashName(name);
    return path.join(this.#dir, `${file}.lock`);
  }

  async acquire(name: string): Promise<Unlock> {
    const lockPath = this.pathOf(name);
    const deadline = Date.now() + this.#timeoutMs;
    const releaseQueue = await inProcess.lock(lockPath, this.#timeoutMs);
    if (!releaseQueue) throw this.#timedOut(name);
    try {
      let delay = 1;
      while (!(await this.#tryCreate(lockPath))) {
        if (await this.#breakIfStale(lockPath)) continue;
        const left = deadline - Date.now();
        if (left <= 0) throw this.#timedOut(name);
        await new Promise((r) => setTimeout(r, Math.min(delay, left)));
        delay = Math.min(delay * 2, MAX_POLL_MS);
      }
    } catch (error) {
      releaseQueue();
      throw error;
    }
    return async () => {
      try {
        await this.#removeIfOurs(lockPath);
      } finally {
        releaseQueue();
      }
    };
  }

  /** Removes this instance's owner file. Locks still held stay valid until their unlock. */
  async close(): Promise<void> {
    const owner = await this.#owner?.catch(() => null);
    this.#owner = null;
    if (owner) await unlink(owner.path).catch(() => undefined);
  }

  #timedOut(name: string): UnavailableError {
    return new UnavailableError(
      `session ${JSON.stringify(name)} stayed locked by another writer for more than ${this.#timeoutMs} ms`,
    );
  }

  async #tryCreate(lockPath: string): Promise<boolean> {
    const owner = await this.#ownerFile();
    try {
      await link(owner.path, lockPath);
      this.#held.set(lockPath, owner.ino);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      if (code === 'ENOENT') {
        // Someone removed the locks folder or our owner file: recreate and try again.
        this.#owner = null;
        return false;
      }
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EMLINK') {
        return this.#tryCreateExclusive(lockPath);
      }
      throw error;
    }
  }

  async #tryCreateExclusive(lockPath: string): Promise<boolean> {
    try {
      const handle = await open(lockPath, 'wx');
      try {
        await handle.writeFile(`${this.#identity}\n`);
        this.#held.set(lockPath, (await handle.stat({ bigint: true })).ino);
      } finally {
        await handle.close();
      }
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
  }

  async #breakIfStale(lockPath: string): Promise<boolean> {
    const holder = await readHolder(lockPath);
    if (!holder) return true;
    if (!this.#isStale(holder)) return false;
    const breaker = `${lockPath}.break`;
    if (!(await this.#tryCreate(breaker))) {
      const other = await readHolder(breaker);
      if (other && this.#isStale(other)) await unlinkIfSame(breaker, other.ino);
      return false;
    }
    try {
      const again = await readHolder(lockPath);
      if (again && again.ino === holder.ino && again.identity === holder.identity) {
        await unlink(lockPath).catch(() => undefined);
        this.#logger?.warn({ lock: lockPath, owner: holder.identity }, 'broke a stale session lock');
      }
    } finally {
      await this.#removeIfOurs(breaker);
    }
    return true;
  }

  #isStale(holder: Holder): boolean {
    // Our own identity on a lock we do not hold (we hold the in-process queue) is a leftover.
    if (holder.identity === this.#identity) return true;
    if (holder.identity === '') return Date.now() - holder.mtimeMs > UNOWNED_GRACE_MS;
    return !isIdentityAlive(holder.identity);
  }

  async #removeIfOurs(lockPath: string): Promise<void> {
    const ino = this.#held.get(lockPath);
    this.#held.delete(lockPath);
    if (ino !== undefined) await unlinkIfSame(lockPath, ino);
  }

  #ownerFile(): Promise<{ path: string; ino: bigint }> {
    if (!this.#owner) {
      this.#owner = this.#createOwnerFile();
      this.#owner.catch(() => {
        this.#owner = null;
      });
    }
    return this.#owner;
  }

  async #createOwnerFile(): Promise<{ path: string; ino: bigint }> {
    await mkdir(this.#dir, { recursive: true });
    await this.#removeDeadOwners();
    const [pid, start, token] = this.#identity.split(' ');
    const ownerPath = path.join(this.#dir, `${OWNER_PREFIX}${pid}-${start || 'x'}-${token}`);
    await writeFile(ownerPath, `${this.#identity}\n`);
    return { path: ownerPath, ino: (await stat(ownerPath, { bigint: true })).ino };
  }

  /** Owner files of processes killed before their close(). */
  async #removeDeadOwners(): Promise<void> {
    const names = await readdir(this.#dir).catch(() => [] as string[]);
    for (const name of names) {
      if (!name.startsWith(OWNER_PREFIX)) continue;
      const [pid = '', start = ''] = name.slice(OWNER_PREFIX.length).split('-');
      if (!isIdentityAlive(`${pid} ${start === 'x' ? '' : start}`)) {
        await unlink(path.join(this.#dir, name)).catch(() => undefined);
      }
    }
  }
}

async function readHolder(lockPath: string): Promise<Holder | null> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(lockPath, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    const st = await handle.stat({ bigint: true });
    const identity = (await handle.readFile('utf8')).trim();
    return { ino: st.ino, identity, mtimeMs: Number(st.mtimeMs) };
  } finally {
    await handle.close();
  }
}

async function unlinkIfSame(file: string, ino: bigint): Promise<void> {
  try {
    if ((await stat(file, { bigint: true })).ino === ino) await unlink(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
