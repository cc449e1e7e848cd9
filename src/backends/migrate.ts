/**
 * JSONL -> SQLite import of `<dataDir>/sessions/*.jsonl` into `<dataDir>/sessions/sessions.db`,
 * step for step zeroclaw HEAD's retry-safe import (#9715): stage as `X.jsonl.importing`, one
 * IMMEDIATE transaction per file that writes the rows, the metadata and a receipt in
 * `jsonl_import_receipts`, then archive as `X.jsonl.migrated` by hard link. A run killed at any
 * moment, by us or by zeroclaw, is finished by the next run of either without duplicates or loss.
 *
 * Unlike zeroclaw, which stops at the first bad file, every file gets its own outcome.
 */

import fs from 'node:fs';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { type AppError, ConflictError, InvalidInputError, isAppError, UnavailableError } from '../errors.js';
import { FileLocks } from './jsonl/file-lock.js';
import { sessionPaths } from './jsonl/session-paths.js';
import {
  archiveStaged,
  type Candidate,
  fsyncDir,
  fsyncPath,
  listCandidates,
  readFingerprint,
  restoreStaged,
} from './migrate-files.js';
import { importStagedFile, readReceipt } from './migrate-import.js';
import { applyPragmas, ensureSchema } from './sqlite/schema.js';

/** Points of a file's import after which a crash leaves a distinct on-disk state. */
export type MigrationStep = 'staged' | 'fingerprinted' | 'rows-written' | 'committed' | 'linked' | 'archived';

export type MigrationOutcome =
  | { status: 'imported'; file: string; sessionKey: string; messages: number; skippedLines: number }
  | { status: 'already-imported'; file: string; sessionKey: string }
  | {
      status: 'failed';
      file: string;
      sessionKey: string;
      error: AppError;
      /**
       * True: a receipt for this file is in SQLite, so the file stays `.importing` (or archived) and
       * a rerun finishes or re-reports it. False: the file is back as `X.jsonl` (or the state could
       * not be read, and it stays staged for the next run to decide).
       */
      committed: boolean;
    };

export interface MigrationProgress {
  /** The live name `X.jsonl` of the file just handled. */
  file: string;
  /** 1-based position of this file among `total`. */
  index: number;
  total: number;
  /** Messages imported from this file (0 unless it was imported now). */
  messages: number;
  status: MigrationOutcome['status'];
}

export interface MigrationSummary {
  /** One per source file, in the order they were handled (staged files first). */
  outcomes: MigrationOutcome[];
  /** Sessions imported by this run. */
  sessions: number;
  /** Messages imported by this run. */
  messages: number;
  /** Unreadable lines left out of the sessions imported by this run. */
  skippedLines: number;
  alreadyImported: number;
  failed: number;
}

export interface MigrateOptions {
  /** The workspace: the folder that holds `sessions/`. */
  dataDir: string;
  onProgress?: ((progress: MigrationProgress) => void) | undefined;
  logger?: Logger | undefined;
  /**
   * How long to wait for another writer of `sessions.db` before a file fails with UnavailableError.
   * @default 5_000 // milliseconds
   */
  lockTimeoutMs?: number | undefined;
  /**
   * Test seam: runs after each step of each file (crash tests kill the process here). A returned
   * promise is awaited (a pause), except at `rows-written` and `linked`, which run inside a step.
   */
  onStep?: ((step: MigrationStep, file: string) => void | Promise<void>) | undefined;
}

const running = new Set<string>();

export async function migrateJsonlToSqlite(options: MigrateOptions): Promise<MigrationSummary> {
  const dir = path.resolve(options.dataDir, 'sessions');
  // Two runs over one directory in one process would race each other's renames.
  if (running.has(dir)) throw new ConflictError('a JSONL migration of this workspace is already running');
  running.add(dir);
  try {
    return await migrateDirectory(dir, options);
  } finally {
    running.delete(dir);
  }
}

async function migrateDirectory(dir: string, options: MigrateOptions): Promise<MigrationSummary> {
  const summary: MigrationSummary = {
    outcomes: [],
    sessions: 0,
    messages: 0,
    skippedLines: 0,
    alreadyImported: 0,
    failed: 0,
  };
  let candidates: Candidate[];
  try {
    candidates = listCandidates(dir);
  } catch (error) {
    throw toAppError(error, 'cannot list the sessions directory');
  }
  if (candidates.length === 0) return summary;
  const lockTimeoutMs = options.lockTimeoutMs ?? 5_000;
  const db = openDatabase(dir, lockTimeoutMs);
  // The JSONL backend's per-session locks: a sessiongraph append waits while its file is staged,
  // then finds the receipt (its fence) instead of writing a file nobody would import.
  const locks = new FileLocks({ dir: sessionPaths(options.dataDir).locksDir, timeoutMs: lockTimeoutMs });
  try {
    for (const [i, candidate] of candidates.entries()) {
      // zeroclaw's key: the file stem (a raw key the JSONL sidecar recorded is not used: zeroclaw
      // would not find the session under it, nor accept its receipt).
      const outcome = await locks
        .withLock(candidate.stem, () => migrateOne(db, dir, candidate, candidate.stem, options))
        .catch(
          (error: unknown): MigrationOutcome => ({
            status: 'failed',
            file: candidate.sourceName,
            sessionKey: candidate.stem,
            error: toAppError(error, `cannot lock ${candidate.sourceName}`),
            committed: false,
          }),
        );
      record(summary, outcome);
      log(options.logger, outcome);
      options.onProgress?.({
        file: candidate.sourceName,
        index: i + 1,
        total: candidates.length,
        messages: outcome.status === 'imported' ? outcome.messages : 0,
        status: outcome.status,
      });
      await nextTurn();
    }
  } finally {
    db.close();
    await locks.close();
  }
  return summary;
}

function openDatabase(dir: string, lockTimeoutMs: number): Database.Database {
  let db: Database.Database | undefined;
  try {
    db = new Database(path.join(dir, 'sessions.db'));
    applyPragmas(db, lockTimeoutMs);
    ensureSchema(db);
    return db;
  } catch (error) {
    db?.close();
    throw toAppError(error, 'cannot open sessions.db for the JSONL import');
  }
}

async function migrateOne(
  db: Database.Database,
  dir: string,
  candidate: Candidate,
  sessionKey: string,
  options: MigrateOptions,
): Promise<MigrationOutcome> {
  const { sourceName, stem } = candidate;
  const file = sourceName;
  const fail = (error: unknown, committed: boolean): MigrationOutcome => ({
    status: 'failed',
    file,
    sessionKey,
    error: toAppError(error, `JSONL import of ${sourceName} failed`),
    committed,
  });
  if (candidate.invalid) return fail(new InvalidInputError(candidate.invalid), false);
  if (candidate.live && candidate.staged) {
    return fail(
      new ConflictError(
        `refusing ambiguous JSONL migration with both ${sourceName} and ${sourceName}.importing`,
      ),
      false,
    );
  }
  const livePath = path.join(dir, sourceName);
  const stagedPath = `${livePath}.importing`;
  const migratedPath = `${livePath}.migrated`;
  const step = async (name: MigrationStep) => {
    await options.onStep?.(name, sourceName);
  };

  if (candidate.live) {
    if (fs.existsSync(migratedPath)) {
      return fail(
        new ConflictError(`refusing to replace existing migrated JSONL session ${sourceName}.migrated`),
        false,
      );
    }
    try {
      fs.renameSync(livePath, stagedPath);
    } catch (error) {
      return fail(error, false);
    }
  }

  let result: ReturnType<typeof importStagedFile>;
  let fingerprint: ReturnType<typeof readFingerprint>;
  let transactionBegun = false;
  try {
    if (candidate.live) await step('staged');
    fsyncPath(stagedPath);
    fsyncDir(dir);
    fingerprint = readFingerprint(stagedPath);
    await step('fingerprinted');
    transactionBegun = true;
    result = importStagedFile(db, {
      sourceName,
      stem,
      sessionKey,
      stagedPath,
      fingerprint,
      beforeCommit: () => void options.onStep?.('rows-written', sourceName),
    });
    await step('committed');
  } catch (error) {
    // A file this run staged, failing before its transaction began: nothing can have committed,
    // so it goes back without asking for a receipt (which may fail too), as zeroclaw does.
    const receiptMatters = transactionBegun || !candidate.live;
    return failBeforeArchive(db, stagedPath, livePath, sourceName, error, fail, receiptMatters);
  }

  try {
    archiveStaged(stagedPath, migratedPath, fingerprint, () => void options.onStep?.('linked', sourceName));
    await step('archived');
  } catch (error) {
    return fail(error, true);
  }
  if (fs.existsSync(livePath)) {
    return fail(new ConflictError(`JSONL session ${sourceName} reappeared during migration`), true);
  }
  return result.kind === 'imported'
    ? { status: 'imported', file, sessionKey, messages: result.messages, skippedLines: result.skippedLines }
    : { status: 'already-imported', file, sessionKey: result.sessionKey };
}

/**
 * Whether to put the file back depends on the receipt alone (when `receiptMatters`): none means
 * nothing committed, so the file returns to `X.jsonl`; a receipt (or no way to tell) keeps it
 * staged for the next run. Without `receiptMatters` (nothing can have committed) it goes back.
 */
function failBeforeArchive(
  db: Database.Database,
  stagedPath: string,
  livePath: string,
  sourceName: string,
  error: unknown,
  fail: (error: unknown, committed: boolean) => MigrationOutcome,
  receiptMatters: boolean,
): MigrationOutcome {
  if (receiptMatters) {
    let receipt: ReturnType<typeof readReceipt>;
    try {
      receipt = readReceipt(db, sourceName);
    } catch {
      return fail(error, false);
    }
    if (receipt) return fail(error, true);
  }
  try {
    restoreStaged(stagedPath, livePath);
  } catch (restoreError) {
    const first = toAppError(error, `JSONL import of ${sourceName} failed`);
    return fail(
      new UnavailableError(
        `${first.message}; then restoring ${sourceName} failed: ${describe(restoreError)}`,
        {
          cause: restoreError,
        },
      ),
      false,
    );
  }
  return fail(error, false);
}

function record(summary: MigrationSummary, outcome: MigrationOutcome): void {
  summary.outcomes.push(outcome);
  if (outcome.status === 'imported') {
    summary.sessions++;
    summary.messages += outcome.messages;
    summary.skippedLines += outcome.skippedLines;
  } else if (outcome.status === 'already-imported') summary.alreadyImported++;
  else summary.failed++;
}

function log(logger: Logger | undefined, outcome: MigrationOutcome): void {
  if (!logger) return;
  if (outcome.status === 'failed') {
    logger.warn(
      { file: outcome.file, code: outcome.error.code, committed: outcome.committed, err: outcome.error },
      'JSONL import failed',
    );
  } else logger.info({ ...outcome }, 'JSONL import');
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Expected refusals keep their class; I/O and SQLite failures are worth a retry, so Unavailable. */
function toAppError(error: unknown, context: string): AppError {
  if (isAppError(error)) return error;
  return new UnavailableError(`${context}: ${describe(error)}`, { cause: error });
}
