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
import { createRawKeyLookup } from './jsonl/raw-key-lookup.js';
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
   * Maps a file stem to the raw session key recorded for it, or null to import under the stem
   * (zeroclaw's choice).
   * @default the raw key in the JSONL backend's sidecar (`sessions/.sessiongraph/keys/`), if any
   */
  rawKeyFor?: ((stem: string) => string | null | Promise<string | null>) | undefined;
  /** Test seam: runs synchronously after each step of each file (crash tests kill the process here). */
  onStep?: ((step: MigrationStep, file: string) => void) | undefined;
}

const running = new Set<string>();

export async function migrateJsonlToSqlite(options: MigrateOptions): Promise<MigrationSummary> {
  const dir = path.resolve(options.dataDir, 'sessions');
  // Two runs over one directory in one process would race each other's renames.
  if (running.has(dir)) throw new ConflictError('a JSONL migration of this workspace is already running');
  running.add(dir);
  try {
    return await migrateDirectory(dir, {
      ...options,
      rawKeyFor: options.rawKeyFor ?? createRawKeyLookup(options.dataDir),
    });
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
  const db = openDatabase(dir, options.lockTimeoutMs ?? 5_000);
  try {
    for (const [i, candidate] of candidates.entries()) {
      const outcome = await resolveKey(candidate, options).then(
        (sessionKey) => migrateOne(db, dir, candidate, sessionKey, options),
        (error: unknown): MigrationOutcome => ({
          status: 'failed',
          file: candidate.sourceName,
          sessionKey: candidate.stem,
          error: toAppError(error, `cannot tell the raw key of ${candidate.sourceName}`),
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

async function resolveKey(candidate: Candidate, options: MigrateOptions): Promise<string> {
  return (await options.rawKeyFor?.(candidate.stem)) ?? candidate.stem;
}

function migrateOne(
  db: Database.Database,
  dir: string,
  candidate: Candidate,
  sessionKey: string,
  options: MigrateOptions,
): MigrationOutcome {
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
  const step = (name: MigrationStep) => options.onStep?.(name, sourceName);

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
  try {
    if (candidate.live) step('staged');
    fsyncPath(stagedPath);
    fsyncDir(dir);
    fingerprint = readFingerprint(stagedPath);
    step('fingerprinted');
    result = importStagedFile(db, {
      sourceName,
      stem,
      sessionKey,
      stagedPath,
      fingerprint,
      beforeCommit: () => step('rows-written'),
    });
    step('committed');
  } catch (error) {
    return failBeforeArchive(db, stagedPath, livePath, sourceName, error, fail);
  }

  try {
    archiveStaged(stagedPath, migratedPath, fingerprint, () => step('linked'));
    step('archived');
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
 * Whether to put the file back depends on the receipt alone: none means nothing committed, so the
 * file returns to `X.jsonl`; a receipt (or no way to tell) keeps it staged for the next run.
 */
function failBeforeArchive(
  db: Database.Database,
  stagedPath: string,
  livePath: string,
  sourceName: string,
  error: unknown,
  fail: (error: unknown, committed: boolean) => MigrationOutcome,
): MigrationOutcome {
  let receipt: ReturnType<typeof readReceipt>;
  try {
    receipt = readReceipt(db, sourceName);
  } catch {
    return fail(error, false);
  }
  if (receipt) return fail(error, true);
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
