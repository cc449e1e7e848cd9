/**
 * The in-memory index of one `<stem>.jsonl` file, so that a page costs O(page) and not O(file).
 *
 * It holds the byte offset of every readable line (8 bytes per message), the counts of corrupt
 * lines and of content code points, and how the unterminated tail (bytes after the last `\n`, if
 * any) reads. It is checked against the file on every use (`sync`, with an fstat of the handle
 * about to be read): same inode and the file only grew -> only the new bytes are read; it shrank,
 * changed inode, or the bytes just before the indexed end changed (an in-place rewrite) -> rebuilt.
 *
 * Lines are classified with zeroclaw's reader rules (jsonl-line.ts): seq N is the Nth readable
 * line; blank lines are nothing; corrupt lines are counted. An unterminated tail that parses is
 * a message, as zeroclaw's `lines()` reads it too.
 */

import type { BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { NewMessage } from '../backend.js';
import { findNewline, forEachLine, IndexDriftError, readExactly } from './file-lines.js';
import { decodeLine } from './jsonl-line.js';

const FINGERPRINT_BYTES = 32;

type LineKind = 'none' | 'message' | 'blank' | 'corrupt';

/** The bytes of one readable line: [start, end), `end` past its `\n` when it has one. */
export interface LineSpan {
  start: number;
  end: number;
  message: NewMessage;
}

/** The readable lines of a file at one moment: `seq` N starts at `starts[N - 1]`. */
export interface ReadableLines {
  starts: Float64Array;
  /** Where an unterminated readable last line starts (seq `starts.length + 1`), or null. */
  tailStart: number | null;
  size: number;
}

export function codePoints(text: string): number {
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) n--;
  }
  return n;
}

export class LineIndex {
  #dev = -1n;
  #ino = -1n;
  #mtimeNs = -1n;
  /** File size at the last sync. */
  #size = 0;
  /** Offset just past the last `\n`: the end of the complete lines. */
  #complete = 0;
  #starts = new Float64Array(64);
  /** Readable complete lines. */
  #count = 0;
  #corrupt = 0;
  #chars = 0;
  #tail: LineKind = 'none';
  #tailChars = 0;
  #fingerprint: Buffer = Buffer.alloc(0);

  get messageCount(): number {
    return this.#count + (this.#tail === 'message' ? 1 : 0);
  }

  get unreadableCount(): number {
    return this.#corrupt + (this.#tail === 'corrupt' ? 1 : 0);
  }

  get characterCount(): number {
    return this.#chars + this.#tailChars;
  }

  /** The size the index covers. */
  get size(): number {
    return this.#size;
  }

  /** False when the file ends in an unterminated (torn or still being written) line. */
  get endsWithNewline(): boolean {
    return this.#size === this.#complete;
  }

  invalidate(): void {
    this.#ino = -1n;
  }

  /** True when `st` is exactly the file the index last saw (nothing to read). */
  covers(st: BigIntStats): boolean {
    return (
      st.ino === this.#ino &&
      st.dev === this.#dev &&
      st.mtimeNs === this.#mtimeNs &&
      Number(st.size) === this.#size
    );
  }

  /** Brings the index up to date with the file open as `handle`, whose fstat is `st`. */
  async sync(handle: FileHandle, st: BigIntStats): Promise<void> {
    try {
      const size = Number(st.size);
      if (st.dev !== this.#dev || st.ino !== this.#ino || size < this.#complete) {
        await this.#rebuild(handle, st);
      } else if (size !== this.#size || st.mtimeNs !== this.#mtimeNs) {
        if (await this.#prefixChanged(handle)) {
          await this.#rebuild(handle, st);
        } else {
          const end = await this.#scan(handle, this.#complete, size);
          this.#adopt(st, end);
        }
      }
    } catch (error) {
      this.invalidate();
      throw error;
    }
  }

  /** Readable messages [from, to) (0-based positions; seq = position + 1), in order. */
  async read(handle: FileHandle, from: number, to: number): Promise<NewMessage[]> {
    const total = this.messageCount;
    from = Math.max(0, from);
    to = Math.min(total, to);
    if (to <= from) return [];
    const start = from < this.#count ? this.#starts[from]! : this.#complete;
    const end = to < this.#count ? this.#starts[to]! : to === this.#count ? this.#complete : this.#size;
    const bytes = await readExactly(handle, start, end - start);
    const out: NewMessage[] = [];
    let at = 0;
    while (out.length < to - from && at <= bytes.length) {
      let nl = bytes.indexOf(0x0a, at);
      if (nl === -1) nl = bytes.length;
      const line = decodeLine(bytes.subarray(at, nl));
      if (line.kind === 'message') out.push(line.message);
      at = nl + 1;
    }
    if (out.length !== to - from) throw new IndexDriftError('the file changed during a read');
    return out;
  }

  /** The last readable line, or null when there is none. */
  async lastLine(handle: FileHandle): Promise<LineSpan | null> {
    if (this.messageCount === 0) return null;
    let start: number;
    let end: number;
    if (this.#tail === 'message') {
      start = this.#complete;
      end = this.#size;
    } else {
      start = this.#starts[this.#count - 1]!;
      end = (await findNewline(handle, start, this.#complete)) + 1;
    }
    const bytes = await readExactly(handle, start, end - start);
    const line = decodeLine(bytes[bytes.length - 1] === 0x0a ? bytes.subarray(0, -1) : bytes);
    if (line.kind !== 'message') throw new IndexDriftError('the last message moved');
    return { start, end, message: line.message };
  }

  /** Where the readable lines start, as of the last sync (a copy: later writes do not move it). */
  snapshot(): ReadableLines {
    return {
      starts: this.#starts.slice(0, this.#count),
      tailStart: this.#tail === 'message' ? this.#complete : null,
      size: this.#size,
    };
  }

  /** 1-based seq of the readable line starting at `offset`, or null when none starts there. */
  seqAt(offset: number): number | null {
    if (this.#tail === 'message' && offset === this.#complete) return this.#count + 1;
    let lo = 0;
    let hi = this.#count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const at = this.#starts[mid]!;
      if (at === offset) return mid + 1;
      if (at < offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return null;
  }

  /** Readable lines that start before `offset` (what a file cut at `offset` held, in part or whole). */
  countBefore(offset: number): number {
    let lo = 0;
    let hi = this.#count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#starts[mid]! < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo === this.#count && this.#tail === 'message' && this.#complete < offset ? lo + 1 : lo;
  }

  /**
   * Records lines we just appended at `offset`, where the index ended, without reading them back.
   * `repairedTail`: the write began with a `\n` that terminated the old tail.
   */
  async noteAppended(
    handle: FileHandle,
    st: BigIntStats,
    offset: number,
    repairedTail: boolean,
    lines: ReadonlyArray<{ bytes: number; chars: number }>,
    written: Buffer,
  ): Promise<void> {
    if (offset !== this.#size) throw new Error('noteAppended: the index does not end at the write offset');
    let at = this.#complete;
    if (repairedTail) {
      if (this.#tail === 'message') {
        this.#push(this.#complete);
        this.#chars += this.#tailChars;
      } else if (this.#tail === 'corrupt') {
        this.#corrupt++;
      }
      this.#tail = 'none';
      this.#tailChars = 0;
      at = offset + 1;
    }
    for (const line of lines) {
      this.#push(at);
      this.#chars += line.chars;
      at += line.bytes;
    }
    this.#complete = at;
    this.#adopt(st, at);
    if (written.length >= FINGERPRINT_BYTES)
      this.#fingerprint = Buffer.from(written.subarray(-FINGERPRINT_BYTES));
    else await this.#takeFingerprint(handle);
  }

  /** Records that `span`, the last readable line, was cut out by a rewrite that produced `st`. */
  async noteRemoved(handle: FileHandle, st: BigIntStats, span: LineSpan): Promise<void> {
    const removed = span.end - span.start;
    if (this.#tail === 'message' && span.start === this.#complete) {
      this.#tail = 'none';
      this.#tailChars = 0;
    } else {
      this.#count--;
      this.#chars -= codePoints(span.message.content);
      this.#complete -= removed;
    }
    this.#adopt(st, Number(st.size));
    await this.#takeFingerprint(handle);
  }

  async #rebuild(handle: FileHandle, st: BigIntStats): Promise<void> {
    this.#count = 0;
    this.#corrupt = 0;
    this.#chars = 0;
    this.#complete = 0;
    this.#size = 0;
    this.#fingerprint = Buffer.alloc(0);
    const end = await this.#scan(handle, 0, Number(st.size));
    this.#adopt(st, end);
  }

  #adopt(st: BigIntStats, size: number): void {
    this.#dev = st.dev;
    this.#ino = st.ino;
    this.#mtimeNs = st.mtimeNs;
    this.#size = size;
  }

  /** Indexes the complete lines in [from, to) and classifies what follows the last `\n`. */
  async #scan(handle: FileHandle, from: number, to: number): Promise<number> {
    this.#tail = 'none';
    this.#tailChars = 0;
    this.#complete = from;
    const end = await forEachLine(handle, from, to, (bytes, offset, terminated) => {
      if (terminated) {
        this.#addLine(bytes, offset);
        this.#complete = offset + bytes.length + 1;
        return;
      }
      const line = decodeLine(bytes);
      this.#tail = line.kind;
      if (line.kind === 'message') this.#tailChars = codePoints(line.message.content);
    });
    await this.#takeFingerprint(handle);
    return end;
  }

  #addLine(bytes: Buffer, offset: number): void {
    const line = decodeLine(bytes);
    if (line.kind === 'message') {
      this.#push(offset);
      this.#chars += codePoints(line.message.content);
    } else if (line.kind === 'corrupt') {
      this.#corrupt++;
    }
  }

  #push(offset: number): void {
    if (this.#count === this.#starts.length) {
      const grown = new Float64Array(this.#starts.length * 2);
      grown.set(this.#starts);
      this.#starts = grown;
    }
    this.#starts[this.#count++] = offset;
  }

  async #takeFingerprint(handle: FileHandle): Promise<void> {
    const from = Math.max(0, this.#complete - FINGERPRINT_BYTES);
    this.#fingerprint = await readExactly(handle, from, this.#complete - from);
  }

  async #prefixChanged(handle: FileHandle): Promise<boolean> {
    const n = this.#fingerprint.length;
    if (n === 0) return false;
    const now = await readExactly(handle, this.#complete - n, n).catch(() => null);
    return now === null || !now.equals(this.#fingerprint);
  }
}
