/**
 * The filesystem half of the JSONL -> SQLite import: the candidate list, durable renames,
 * fingerprints, the no-clobber archive and the pre-commit restore, each the way zeroclaw HEAD does
 * it (`session_sqlite.rs`, #9715), so a workspace either tool left half-done is one the other resumes.
 */

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConflictError } from '../errors.js';

/** SHA-256 (lowercase hex) and byte length: what a receipt records about its source file. */
export interface Fingerprint {
  hash: string;
  len: number;
}

const CHUNK_BYTES = 1_048_576;

/** One source file of the import, found as `X.jsonl`, `X.jsonl.importing` or both. */
export interface Candidate {
  /** `X.jsonl`, also the receipt's `source_name`. */
  sourceName: string;
  stem: string;
  live: boolean;
  staged: boolean;
  /** Set when the directory entry cannot be a session (a non-UTF-8 name). */
  invalid?: string;
}

/** zeroclaw's candidate rule: `<stem>.jsonl` and `<stem>.jsonl.importing` with a non-empty stem. */
export function listCandidates(dir: string): Candidate[] {
  let entries: fs.Dirent<Buffer>[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true, encoding: 'buffer' });
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return [];
    throw error;
  }
  const strict = new TextDecoder('utf-8', { fatal: true });
  const byName = new Map<string, Candidate & { raw: Buffer }>();
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const lossy = entry.name.toString('utf8');
    const staged = lossy.endsWith('.jsonl.importing');
    if (!staged && !lossy.endsWith('.jsonl')) continue;
    const sourceName = staged ? lossy.slice(0, -'.importing'.length) : lossy;
    const stem = sourceName.slice(0, -'.jsonl'.length);
    // Rust's Path::extension sees no extension in a dot-file, so zeroclaw never imports `.jsonl`.
    if (stem.length === 0) continue;
    const raw = staged ? entry.name.subarray(0, entry.name.length - '.importing'.length) : entry.name;
    const candidate = byName.get(sourceName) ?? { sourceName, stem, live: false, staged: false, raw };
    if (staged) candidate.staged = true;
    else candidate.live = true;
    try {
      strict.decode(entry.name);
    } catch {
      candidate.invalid = `JSONL migration candidate has a non-UTF-8 filename: ${lossy}`;
    }
    byName.set(sourceName, candidate);
  }
  // Staged files first (an interrupted run is finished before new work starts), then byte order.
  return [...byName.values()].sort(
    (a, b) => Number(b.staged) - Number(a.staged) || Buffer.compare(a.raw, b.raw),
  );
}

export function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

export function sameFingerprint(a: Fingerprint, b: Fingerprint): boolean {
  return a.hash === b.hash && a.len === b.len;
}

/** fsync a file, or a directory so that renames and links in it survive a power loss. */
export function fsyncPath(target: string): void {
  const fd = fs.openSync(target, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function fsyncDir(dir: string): void {
  // Directories cannot be opened for fsync on Windows; zeroclaw skips this step there too.
  if (process.platform !== 'win32') fsyncPath(dir);
}

/** Reads the whole file once; `onChunk` sees every chunk in order (the buffer is reused after it returns). */
export function readFingerprint(file: string, onChunk?: (chunk: Buffer) => void): Fingerprint {
  const fd = fs.openSync(file, 'r');
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    let len = 0;
    for (;;) {
      const read = fs.readSync(fd, buffer, 0, CHUNK_BYTES, null);
      if (read === 0) break;
      const chunk = buffer.subarray(0, read);
      hash.update(chunk);
      onChunk?.(chunk);
      len += read;
    }
    return { hash: hash.digest('hex'), len };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Splits a chunk stream on `\n` like Rust's `BufRead::split(b'\n')`: a last piece without a
 * newline is still a line. Lines are handed over before the next chunk overwrites them.
 */
export function createLineSplitter(onLine: (line: Uint8Array) => void): {
  push(chunk: Buffer): void;
  end(): void;
} {
  let carry: Buffer | null = null;
  return {
    push(chunk) {
      let start = 0;
      for (let nl = chunk.indexOf(0x0a, start); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
        const piece = chunk.subarray(start, nl);
        onLine(carry ? Buffer.concat([carry, piece]) : piece);
        carry = null;
        start = nl + 1;
      }
      if (start < chunk.length) {
        const rest = chunk.subarray(start);
        carry = carry ? Buffer.concat([carry, rest]) : Buffer.from(rest);
      }
    },
    end() {
      if (carry) onLine(carry);
      carry = null;
    },
  };
}

/**
 * `X.jsonl.importing -> X.jsonl.migrated` without ever replacing an archive: a hard link fails on
 * an existing name. An archive left by an earlier interrupted run is accepted only if its bytes are
 * the ones the receipt records. `onLinked` runs between the link and the unlink (a test seam).
 */
export function archiveStaged(
  stagedPath: string,
  migratedPath: string,
  expected: Fingerprint,
  onLinked?: () => void,
): void {
  const dir = path.dirname(stagedPath);
  let linked = false;
  try {
    fs.linkSync(stagedPath, migratedPath);
    linked = true;
  } catch (error) {
    if (!isErrno(error, 'EEXIST')) throw error;
  }
  fsyncDir(dir);
  if (!sameFingerprint(readFingerprint(migratedPath), expected)) {
    if (linked) {
      fs.rmSync(migratedPath, { force: true });
      throw new ConflictError(
        `JSONL archive ${path.basename(migratedPath)} changed during filesystem handoff`,
      );
    }
    throw new ConflictError(`refusing incompatible migrated JSONL session ${path.basename(migratedPath)}`);
  }
  onLinked?.();
  fs.unlinkSync(stagedPath);
  fsyncDir(dir);
}

/** Before a commit, a failed import puts the file back where it was, unless a new one took its place. */
export function restoreStaged(stagedPath: string, livePath: string): void {
  if (fs.existsSync(livePath)) {
    throw new ConflictError(
      `refusing to replace JSONL session ${path.basename(livePath)} created while it was staged`,
    );
  }
  fs.renameSync(stagedPath, livePath);
  fsyncDir(path.dirname(livePath));
}
