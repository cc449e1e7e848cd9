/**
 * What a JSONL watcher (jsonl-watcher.ts) remembers of one session file, and how a file that
 * changed since is told apart:
 * - grown in place (same inode, bigger or equal, the bytes just before the old end unchanged):
 *   the messages past the old count were appended;
 * - anything else (a shorter file, a new inode after a temp+rename rewrite, changed bytes): the
 *   new file's last messages are compared with the remembered digests of the last TAIL_MESSAGES;
 *   when they are the old ones minus the last few, those were removed; otherwise it was rewritten.
 * Messages are compared by the digest of their canonical line (jsonl-line.ts `encodeLine`), so a
 * rewrite that re-serialises lines (zeroclaw drops unknown fields) still compares equal.
 */

import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { byteAt, readExactly } from './file-lines.js';
import { encodeLine } from './jsonl-line.js';
import type { LineIndex } from './line-index.js';

/** Last messages remembered per file, to tell "its last messages vanished" from other changes. */
export const TAIL_MESSAGES = 8;
/** Bytes before the end remembered per file, to tell growth from an in-place rewrite. */
const EDGE_BYTES = 32;

export interface FileMark {
  dev: bigint;
  ino: bigint;
  size: number;
  mtimeNs: bigint;
  /** Readable messages; null when only the stat is known (a file untouched since watching began). */
  count: number | null;
  /** Digests of the last (up to TAIL_MESSAGES) messages, oldest first; the last is seq `count`. */
  tail: string[];
  /** The bytes just before `size` (up to EDGE_BYTES); empty when unknown. */
  edge: Buffer;
}

export type FileChange =
  | { kind: 'appended'; afterSeq: number; throughSeq: number }
  | { kind: 'removed'; seqs: number[] }
  | { kind: 'rewritten' }
  | { kind: 'deleted' };

/** A watcher as SessionFile sees it; called under the file's mutex, so never concurrently per file. */
export interface FileWatcher {
  markOf(stem: string): FileMark | undefined;
  /** The file's mark now (undefined: it is gone) and what changed since the previous one. */
  update(stem: string, mark: FileMark | undefined, changes: FileChange[]): void;
}

/** A mark that knows the stat only: a file as found when watching began. */
export function statMark(st: BigIntStats): FileMark {
  return {
    dev: st.dev,
    ino: st.ino,
    size: Number(st.size),
    mtimeNs: st.mtimeNs,
    count: null,
    tail: [],
    edge: Buffer.alloc(0),
  };
}

/** True when `st` shows the file exactly as marked (nothing to look at). */
export function sameStat(mark: FileMark, st: BigIntStats): boolean {
  return (
    mark.ino === st.ino && mark.dev === st.dev && mark.mtimeNs === st.mtimeNs && mark.size === Number(st.size)
  );
}

export function lineDigest(line: string): string {
  return createHash('sha1').update(line).digest('base64');
}

/** The file's mark, read through its index (synced to `st`): its last messages and end bytes. */
export async function readMark(handle: FileHandle, st: BigIntStats, index: LineIndex): Promise<FileMark> {
  const count = index.messageCount;
  const last = await index.read(handle, Math.max(0, count - TAIL_MESSAGES), count);
  return {
    ...statMark(st),
    size: index.size,
    count,
    tail: last.map((m) => lineDigest(encodeLine(m))),
    edge: await readEdge(handle, index.size),
  };
}

/**
 * The mark after we appended `lines` (their text) to a file marked `before`, without reading the
 * lines back; read when `before` does not know the count.
 */
export async function markAfterAppend(
  handle: FileHandle,
  st: BigIntStats,
  index: LineIndex,
  before: FileMark | undefined,
  lines: readonly string[],
): Promise<FileMark> {
  if (before?.count == null || before.count + lines.length !== index.messageCount) {
    return readMark(handle, st, index);
  }
  return {
    ...statMark(st),
    size: index.size,
    count: index.messageCount,
    tail: [...before.tail, ...lines.map(lineDigest)].slice(-TAIL_MESSAGES),
    edge: await readEdge(handle, index.size),
  };
}

/** What changed from `before` to `now`, the file open as `handle` with `index` synced to it. */
export async function changesSince(
  handle: FileHandle,
  index: LineIndex,
  before: FileMark | undefined,
  now: FileMark,
): Promise<FileChange[]> {
  const count = now.count ?? 0;
  if (!before) return count > 0 ? [{ kind: 'appended', afterSeq: 0, throughSeq: count }] : [];
  if (await grewInPlace(handle, before, now)) {
    let kept = index.countBefore(before.size);
    if (before.count === null) {
      // Only the size was known: a line the old end cut through may be new, so it counts as new.
      if (kept > 0 && (await byteAt(handle, before.size - 1)) !== 0x0a) kept--;
    } else if (kept >= before.count) {
      kept = before.count;
    } else {
      return comparedTails(before, now);
    }
    return count > kept ? [{ kind: 'appended', afterSeq: kept, throughSeq: count }] : [];
  }
  return comparedTails(before, now);
}

async function grewInPlace(handle: FileHandle, before: FileMark, now: FileMark): Promise<boolean> {
  if (now.ino !== before.ino || now.dev !== before.dev || now.size < before.size) return false;
  const n = before.edge.length;
  if (n === 0) return true;
  return (await readExactly(handle, before.size - n, n)).equals(before.edge);
}

/** A rewrite: `removed` when the new file is the old one without its last messages. */
function comparedTails(before: FileMark, now: FileMark): FileChange[] {
  const was = before.count;
  const is = now.count ?? 0;
  if (was === null || is >= was || was - is > before.tail.length) return [{ kind: 'rewritten' }];
  const wasFrom = was - before.tail.length;
  const isFrom = is - now.tail.length;
  for (let seq = Math.max(wasFrom, isFrom) + 1; seq <= is; seq++) {
    if (before.tail[seq - wasFrom - 1] !== now.tail[seq - isFrom - 1]) return [{ kind: 'rewritten' }];
  }
  const seqs: number[] = [];
  for (let seq = was; seq > is; seq--) seqs.push(seq);
  return [{ kind: 'removed', seqs }];
}

async function readEdge(handle: FileHandle, size: number): Promise<Buffer> {
  const n = Math.min(EDGE_BYTES, size);
  return readExactly(handle, size - n, n);
}
