/**
 * Byte-level reads and writes on an open file handle, shared by the line index and the session
 * file: streaming lines in 1 MiB chunks, exact positional reads and writes, range copies, and
 * searches for a newline or a byte string.
 */

import type { FileHandle } from 'node:fs/promises';

export const CHUNK_BYTES = 1 << 20;

/** The file changed under a read in a way its stat did not show; rebuild and retry. */
export class IndexDriftError extends Error {
  override readonly name = 'IndexDriftError';
}

/**
 * Calls `visit` for every line in [from, to), `from` being a line start: the line's bytes without
 * its `\n`, its offset, and whether it ended in `\n` (false only for an unterminated tail).
 * `afterChunk` runs after each chunk's lines, for callers that write as they go. Returns the
 * offset reached: `to`, or less when the file ended early.
 */
export async function forEachLine(
  handle: FileHandle,
  from: number,
  to: number,
  visit: (bytes: Buffer, offset: number, terminated: boolean) => void,
  afterChunk?: () => Promise<void>,
): Promise<number> {
  let pos = from;
  let lineStart = from;
  let carry: Buffer | null = null;
  while (pos < to) {
    const want = Math.min(CHUNK_BYTES, to - pos);
    const chunk = Buffer.allocUnsafe(want);
    const { bytesRead } = await handle.read(chunk, 0, want, pos);
    if (bytesRead === 0) break;
    pos += bytesRead;
    const data: Buffer = carry
      ? Buffer.concat([carry, chunk.subarray(0, bytesRead)])
      : chunk.subarray(0, bytesRead);
    let at = 0;
    for (let nl = data.indexOf(0x0a); nl !== -1; nl = data.indexOf(0x0a, at)) {
      visit(data.subarray(at, nl), lineStart + at, true);
      at = nl + 1;
    }
    lineStart += at;
    carry = at < data.length ? data.subarray(at) : null;
    await afterChunk?.();
  }
  if (carry) {
    visit(carry, lineStart, false);
    await afterChunk?.();
  }
  return pos;
}

export async function readExactly(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const out = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await handle.read(out, got, length - got, position + got);
    if (bytesRead === 0) throw new IndexDriftError('the file is shorter than indexed');
    got += bytesRead;
  }
  return out;
}

export async function writeAll(handle: FileHandle, bytes: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/** Copies bytes [start, end) of `from` to `to` at `at`. */
export async function copyRange(
  from: FileHandle,
  to: FileHandle,
  start: number,
  end: number,
  at: number,
): Promise<void> {
  const buffer = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, Math.max(1, end - start)));
  let pos = start;
  while (pos < end) {
    const { bytesRead } = await from.read(buffer, 0, Math.min(buffer.length, end - pos), pos);
    if (bytesRead === 0) throw new IndexDriftError('the file shrank during a rewrite');
    await writeAll(to, buffer.subarray(0, bytesRead), at + (pos - start));
    pos += bytesRead;
  }
}

export async function byteAt(handle: FileHandle, position: number): Promise<number | undefined> {
  const one = Buffer.alloc(1);
  const { bytesRead } = await handle.read(one, 0, 1, position);
  return bytesRead === 1 ? one[0] : undefined;
}

/** Offset of the first `\n` at or after `from`, searching up to `limit`. */
export async function findNewline(handle: FileHandle, from: number, limit: number): Promise<number> {
  let pos = from;
  let step = 4_096;
  while (pos < limit) {
    const len = Math.min(step, limit - pos);
    const bytes = await readExactly(handle, pos, len);
    const nl = bytes.indexOf(0x0a);
    if (nl !== -1) return pos + nl;
    pos += len;
    step = Math.min(step * 4, CHUNK_BYTES);
  }
  throw new IndexDriftError('a line end moved');
}

/** Offset of `needle` in the file between `from` and `to`, or null. */
export async function findBytes(
  handle: FileHandle,
  needle: Buffer,
  from: number,
  to: number,
): Promise<number | null> {
  const length = to - from;
  if (length < needle.length) return null;
  const hay = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await handle.read(hay, got, length - got, from + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  const at = hay.subarray(0, got).indexOf(needle);
  return at === -1 ? null : from + at;
}
