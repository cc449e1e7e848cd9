/**
 * Whole-file replacement that survives a crash at any point: the new content goes to a temp file
 * in the target's own folder (so rename(2) is atomic), is fsynced, renamed over the target, and the
 * folder is fsynced so that the rename itself is durable. A crash leaves either the old file or the
 * new one, plus at worst a leaked temp file that `removeLeakedTempFiles` collects later.
 *
 * Temp names are `.sg-<pid>-<start>-<n>.tmp`: hidden, and never ending in `.jsonl`, so zeroclaw
 * (which lists `*.jsonl`) never mistakes one for a session.
 */

import type { BigIntStats } from 'node:fs';
import { type FileHandle, open, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { isIdentityAlive, processStartTime } from './process-liveness.js';

const TEMP = /^\.sg-(\d+)-(\d*)-\d+\.tmp$/;
let counter = 0;

export function tempPathIn(dir: string): string {
  return path.join(dir, `.sg-${process.pid}-${processStartTime(process.pid)}-${++counter}.tmp`);
}

export interface ReplaceOptions {
  /**
   * Called after the temp file is complete and synced, right before the rename; it may throw to
   * abort (the temp file is removed and the target is left untouched).
   */
  beforeRename?: () => Promise<void>;
  /** Creation mode of the new file. @default 0o666 (minus umask) */
  mode?: number;
}

/** Replaces `target` with what `fill` writes into the temp file; returns the new file's stat. */
export async function replaceFile(
  target: string,
  fill: (handle: FileHandle) => Promise<void>,
  options: ReplaceOptions = {},
): Promise<BigIntStats> {
  const dir = path.dirname(target);
  const temp = tempPathIn(dir);
  let renamed = false;
  try {
    const handle = await open(temp, 'wx', options.mode ?? 0o666);
    let st: BigIntStats;
    try {
      await fill(handle);
      await handle.sync();
      st = await handle.stat({ bigint: true });
    } finally {
      await handle.close();
    }
    await options.beforeRename?.();
    await rename(temp, target);
    renamed = true;
    await fsyncDirectory(dir);
    return st;
  } finally {
    if (!renamed) await unlink(temp).catch(() => undefined);
  }
}

/** Makes a folder's entries (a rename, a new or removed file) durable. */
export async function fsyncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    // Some platforms refuse fsync on a directory; the rename is still atomic there.
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF') throw error;
  } finally {
    await handle?.close();
  }
}

/** Removes temp files left by processes that died mid-rewrite; returns how many. */
export async function removeLeakedTempFiles(dir: string): Promise<number> {
  let removed = 0;
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const m = TEMP.exec(name);
    if (!m || isIdentityAlive(`${m[1]} ${m[2]}`)) continue;
    await unlink(path.join(dir, name)).then(
      () => removed++,
      () => undefined,
    );
  }
  return removed;
}
