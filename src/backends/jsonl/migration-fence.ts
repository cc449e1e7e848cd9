/**
 * zeroclaw's migration fence. Once zeroclaw (HEAD) has imported a workspace's JSONL sessions into
 * `sessions/sessions.db`, it records a row per file in `jsonl_import_receipts` and treats JSONL as
 * dead: every JSONL mutation fails. We honour the same fence, so that nothing we write is silently
 * ignored by a zeroclaw that now reads SQLite. Reads keep working.
 *
 * The database is opened read-only, and only when its stat (or its WAL's) changed since the last
 * look: a committed receipt may still sit in the `-wal` file. A fenced workspace stays fenced.
 * A database we cannot read fails closed (UnavailableError).
 */

import { stat } from 'node:fs/promises';
import Database from 'better-sqlite3';
import { ConflictError, UnavailableError } from '../../errors.js';

export class MigrationFence {
  readonly #dbPath: string;
  #fenced = false;
  #signature = '';

  constructor(dbPath: string) {
    this.#dbPath = dbPath;
  }

  /** Throws ConflictError when zeroclaw migrated this workspace to SQLite. */
  async assertWritable(): Promise<void> {
    if (!this.#fenced) {
      const signature = await this.#currentSignature();
      if (signature !== null && signature !== this.#signature) {
        // Checked now, after the await: a fenced workspace stays fenced whatever order calls end in.
        this.#fenced ||= this.#hasReceipts();
        this.#signature = signature;
      }
    }
    if (this.#fenced) {
      throw new ConflictError(
        'this workspace was migrated to SQLite by zeroclaw (sessions.db has JSONL import receipts); ' +
          'its JSONL sessions are read-only now: serve it with the SQLite backend to write',
      );
    }
  }

  async #currentSignature(): Promise<string | null> {
    const db = await stat(this.#dbPath, { bigint: true }).catch(() => null);
    if (!db) return null;
    const wal = await stat(`${this.#dbPath}-wal`, { bigint: true }).catch(() => null);
    return `${db.ino}:${db.size}:${db.mtimeNs}|${wal ? `${wal.size}:${wal.mtimeNs}` : '-'}`;
  }

  #hasReceipts(): boolean {
    let db: Database.Database | undefined;
    try {
      db = new Database(this.#dbPath, { readonly: true, fileMustExist: true });
      const table = db
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jsonl_import_receipts'")
        .get();
      if (table === undefined) return false;
      return db.prepare('SELECT 1 FROM jsonl_import_receipts LIMIT 1').get() !== undefined;
    } catch (error) {
      throw new UnavailableError(
        `cannot tell whether zeroclaw migrated this workspace (sessions.db: ${(error as Error).message})`,
      );
    } finally {
      db?.close();
    }
  }
}
