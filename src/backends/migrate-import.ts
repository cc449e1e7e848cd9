/**
 * The SQLite half of the JSONL -> SQLite import: one `BEGIN IMMEDIATE` transaction per file with
 * zeroclaw HEAD's receipt check, collision refusal, fail-closed rule and SQL, so that the rows,
 * metadata and receipt it leaves are the ones zeroclaw would have written.
 */

import type Database from 'better-sqlite3';
import { ConflictError, InvalidInputError } from '../errors.js';
import { decodeLine } from './jsonl/jsonl-line.js';
import { sanitizeKey } from './keys.js';
import { createLineSplitter, type Fingerprint, readFingerprint, sameFingerprint } from './migrate-files.js';
import { nowTimestamp } from './timestamps.js';

export interface ImportRequest {
  /** The receipt's `source_name`: the live file name `X.jsonl`, never the `.importing` name. */
  sourceName: string;
  /** The file stem, the key zeroclaw imports under. */
  stem: string;
  /** The key we import under: the stem, as zeroclaw does. */
  sessionKey: string;
  stagedPath: string;
  /** Taken after the staged file was fsynced; the receipt records it. */
  fingerprint: Fingerprint;
  /** Runs inside the transaction after every row is written, before COMMIT (a test seam). */
  beforeCommit?: () => void;
}

export type ImportResult =
  | { kind: 'imported'; messages: number; skippedLines: number }
  | { kind: 'already-imported'; sessionKey: string };

interface Receipt {
  session_key: string;
  source_hash: string;
  source_len: number;
}

export function readReceipt(db: Database.Database, sourceName: string): Receipt | null {
  const row = db
    .prepare('SELECT session_key, source_hash, source_len FROM jsonl_import_receipts WHERE source_name = ?')
    .get(sourceName) as Receipt | undefined;
  return row ?? null;
}

/** Runs the per-file import with `synchronous = FULL`, as zeroclaw does, and restores NORMAL after. */
export function importStagedFile(db: Database.Database, request: ImportRequest): ImportResult {
  db.pragma('synchronous = FULL');
  try {
    return db.transaction(() => importInTransaction(db, request)).immediate();
  } finally {
    db.pragma('synchronous = NORMAL');
  }
}

function importInTransaction(db: Database.Database, request: ImportRequest): ImportResult {
  const { sourceName, stem, sessionKey, stagedPath, fingerprint } = request;
  const receipt = readReceipt(db, sourceName);
  if (receipt) {
    // zeroclaw records the stem, and so do we; an older sessiongraph recorded the raw key.
    const keyMatches = receipt.session_key === sessionKey || sanitizeKey(receipt.session_key) === stem;
    if (keyMatches && sameFingerprint({ hash: receipt.source_hash, len: receipt.source_len }, fingerprint)) {
      return { kind: 'already-imported', sessionKey: receipt.session_key };
    }
    throw new ConflictError(`JSONL session ${sourceName} does not match its committed import receipt`);
  }

  const taken = db
    .prepare(
      'SELECT EXISTS(SELECT 1 FROM sessions WHERE session_key = ?) OR EXISTS(SELECT 1 FROM session_metadata WHERE session_key = ?) AS taken',
    )
    .get(sessionKey, sessionKey) as { taken: number };
  if (taken.taken) {
    throw new ConflictError(
      `refusing to import receipt-less JSONL session ${sourceName} over existing SQLite session state for ${sessionKey}`,
    );
  }

  const now = nowTimestamp();
  const insert = db.prepare(
    'INSERT INTO sessions (session_key, role, content, created_at) VALUES (?, ?, ?, ?)',
  );
  let messages = 0;
  let skippedLines = 0;
  let hasContent = false;
  const splitter = createLineSplitter((line) => {
    const decoded = decodeLine(line);
    if (decoded.kind === 'blank') return;
    hasContent = true;
    if (decoded.kind === 'corrupt') {
      skippedLines++;
      return;
    }
    insert.run(sessionKey, decoded.message.role, decoded.message.content, now);
    messages++;
  });
  // The rows come from the same read that is hashed, so the receipt describes exactly what was imported.
  const read = readFingerprint(stagedPath, (chunk) => splitter.push(chunk));
  splitter.end();
  if (!sameFingerprint(read, fingerprint)) {
    throw new ConflictError(`JSONL session ${sourceName} changed while it was staged for import`);
  }
  if (messages === 0 && hasContent) {
    throw new InvalidInputError(`JSONL session ${sourceName} contains no valid messages to import`);
  }

  db.prepare(
    'INSERT INTO session_metadata (session_key, created_at, last_activity, message_count) VALUES (?, ?, ?, ?)',
  ).run(sessionKey, now, now, messages);
  db.prepare(
    'INSERT INTO jsonl_import_receipts (source_name, session_key, source_hash, source_len, imported_at) VALUES (?, ?, ?, ?, ?)',
  ).run(sourceName, sessionKey, fingerprint.hash, fingerprint.len, now);
  request.beforeCommit?.();
  return { kind: 'imported', messages, skippedLines };
}
