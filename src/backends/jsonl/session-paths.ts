/**
 * Where the JSONL backend keeps things inside a zeroclaw workspace:
 *
 *   sessions/<stem>.jsonl                    the sessions, zeroclaw's own files
 *   sessions/sessions.db                     zeroclaw's SQLite store (read for the migration fence)
 *   sessions/.sessiongraph/keys/<hash>.log   sidecars: raw key, name, idempotency records
 *   sessions/.sessiongraph/locks/            advisory lock files
 *   sessions/.sg-<pid>-<start>-<n>.tmp       rewrite temp files (live for one rename)
 *
 * zeroclaw lists only `*.jsonl` in `sessions/`; nothing here ends in `.jsonl`, `.jsonl.migrated`
 * or `.jsonl.importing`.
 */

import path from 'node:path';
import { TooLargeError } from '../../errors.js';
import { sanitizeKey } from '../keys.js';

/** The usual file-name limit (ext4, APFS, NTFS): a longer stem cannot be a file at all. */
export const MAX_FILE_NAME_BYTES = 255;
const SUFFIX = '.jsonl';

export interface SessionPaths {
  sessionsDir: string;
  keysDir: string;
  locksDir: string;
  dbPath: string;
  fileOf(stem: string): string;
}

export function sessionPaths(dataDir: string): SessionPaths {
  const sessionsDir = path.resolve(dataDir, 'sessions');
  const stateDir = path.join(sessionsDir, '.sessiongraph');
  return {
    sessionsDir,
    keysDir: path.join(stateDir, 'keys'),
    locksDir: path.join(stateDir, 'locks'),
    dbPath: path.join(sessionsDir, 'sessions.db'),
    fileOf: (stem) => path.join(sessionsDir, `${stem}${SUFFIX}`),
  };
}

/** The file stem of a (validated) key; TooLargeError when the file name would be too long. */
export function stemForKey(key: string): string {
  const stem = sanitizeKey(key);
  const bytes = Buffer.byteLength(stem + SUFFIX, 'utf8');
  if (bytes > MAX_FILE_NAME_BYTES) {
    throw new TooLargeError(
      `the session key makes a ${bytes}-byte file name; file names hold at most ${MAX_FILE_NAME_BYTES} bytes`,
      'sessionKey',
      MAX_FILE_NAME_BYTES,
      bytes,
      'bytes',
    );
  }
  return stem;
}

/**
 * The stem of a directory entry that is a session file, or null. A stem that is not its own
 * sanitised form (`a.b.jsonl`, made by hand) is skipped: no key can address it, as in zeroclaw,
 * whose reads of key `a.b` open `a_b.jsonl`.
 */
export function stemOfFileName(name: string): string | null {
  if (!name.endsWith(SUFFIX)) return null;
  const stem = name.slice(0, -SUFFIX.length);
  return stem.length > 0 && sanitizeKey(stem) === stem ? stem : null;
}
