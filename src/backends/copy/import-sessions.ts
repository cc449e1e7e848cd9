/**
 * `sessiongraph import`: export lines (export-format.ts) into any backend, through the
 * SessionBackend interface only.
 *
 * Resumable and idempotent by reading the target, not by trusting a journal: each session's
 * source messages are compared, in order, with what the target session already holds; the
 * matching prefix is skipped and only the rest is appended, in atomic batches guarded by
 * expectedLastSeq. A run killed at any point is finished by the next run with the same export,
 * and nothing is stored twice. Each batch also carries a clientMessageId derived from the source
 * key, its source seqs and its messages, so a batch retried after an UnavailableError (or stored
 * by a concurrent run of the same import) is answered from the first result instead of failing the
 * guard. The session's name and times are restored last (appends move lastActivityAt).
 *
 * A session whose target already holds other messages is refused (ConflictError), not merged;
 * the other sessions go on.
 */

import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import {
  type AppError,
  ConflictError,
  InvalidInputError,
  isAppError,
  UnavailableError,
} from '../../errors.js';
import type { AppendResult, NewMessage, SessionBackend, StoredMessage } from '../backend.js';
import { decodeLine, type ExportHeader, type ExportMessage, type ExportSession } from './export-format.js';
import type { CopyProgress } from './export-sessions.js';

export interface ImportOptions {
  /** @default 500 // messages per append; keep it within the target's maxBatchMessages */
  batchSize?: number | undefined;
  /** @default 8_388_608 // bytes of content per append, whatever batchSize says */
  batchBytes?: number | undefined;
  /** @default 500 // target messages per read while comparing */
  pageSize?: number | undefined;
  /** Tries of a backend call that fails with UnavailableError. @default 4 */
  attempts?: number | undefined;
  /** Called after each batch and each session. */
  onProgress?: ((progress: CopyProgress) => void) | undefined;
  logger?: Logger | undefined;
}

export interface SessionFailure {
  key: string;
  error: AppError;
}

export interface ImportSummary {
  /** Sessions read from the stream. */
  sessions: number;
  /** Messages stored by this run. */
  imported: number;
  /** Messages the target already held (an earlier run, or the same history). */
  present: number;
  /** Sessions left as they were, with why; the others went on. */
  failed: SessionFailure[];
  /** Sessions whose target holds the source's messages and later ones: names and times left alone. */
  ahead: string[];
  /** The stream ended with its `end` line and held what that line counts; false: truncated. */
  complete: boolean;
}

interface SessionState {
  record: ExportSession;
  /** The target's last seq as this run knows it: the expectedLastSeq of the next batch. */
  lastSeq: number | null;
  /** Target messages not yet compared; null once the target has no more. */
  target: StoredMessage[] | null;
  targetHasMore: boolean;
  pending: ExportMessage[];
  pendingBytes: number;
  failed: boolean;
}

/** The batch's clientMessageId: same source session, seqs and messages, same id. */
function batchId(key: string, batch: readonly ExportMessage[]): string {
  const hash = createHash('sha256').update(key).update('\0');
  for (const m of batch) hash.update(`${m.seq}\0${m.role}\0${m.content}\0${m.createdAt ?? ''}\0`);
  return `import-${hash.digest('base64url')}`;
}

const toNewMessage = (m: ExportMessage): NewMessage =>
  m.createdAt === null
    ? { role: m.role, content: m.content }
    : { role: m.role, content: m.content, createdAt: m.createdAt };

export async function importSessions(
  backend: SessionBackend,
  lines: AsyncIterable<string>,
  options: ImportOptions = {},
): Promise<ImportSummary> {
  const batchSize = options.batchSize ?? 500;
  const batchBytes = options.batchBytes ?? 8_388_608;
  const pageSize = options.pageSize ?? 500;
  const attempts = options.attempts ?? 4;
  const summary: ImportSummary = {
    sessions: 0,
    imported: 0,
    present: 0,
    failed: [],
    ahead: [],
    complete: false,
  };
  const progress: CopyProgress = { sessions: 0, messages: 0, totalSessions: null, totalMessages: null };
  let messagesRead = 0;
  const report = () => options.onProgress?.({ ...progress, messages: messagesRead });

  /** Retries what failed for a reason that may pass: a lost connection, a lock held too long. */
  async function call<T>(work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        if (!(error instanceof UnavailableError) || attempt >= attempts) throw error;
        options.logger?.warn({ err: error, attempt }, 'import: the target is unavailable, retrying');
        await sleep(250 * 2 ** (attempt - 1));
      }
    }
  }

  function fail(state: SessionState, error: AppError): void {
    state.failed = true;
    state.pending = [];
    summary.failed.push({ key: state.record.key, error });
    options.logger?.warn({ key: state.record.key, err: error }, 'import: session left as it was');
  }

  /** The next target message to compare with, or null once the target has no more. */
  async function nextTarget(state: SessionState): Promise<StoredMessage | null> {
    if (state.target === null) return null;
    if (state.target.length === 0 && state.targetHasMore) {
      const page = await call(() =>
        backend.messages(state.record.key, {
          first: pageSize,
          ...(state.lastSeq !== null && { afterSeq: state.lastSeq }),
        }),
      );
      state.target = page.items;
      state.targetHasMore = page.hasNextPage;
      report();
    }
    const next = state.target.shift() ?? null;
    if (next === null) state.target = null;
    return next;
  }

  async function append(
    state: SessionState,
    batch: ExportMessage[],
    id: string | undefined,
  ): Promise<AppendResult> {
    return call(() =>
      backend.append(state.record.key, batch.map(toNewMessage), {
        ...(id !== undefined && { clientMessageId: id }),
        expectedLastSeq: state.lastSeq,
      }),
    );
  }

  async function flush(state: SessionState): Promise<void> {
    if (state.failed || state.pending.length === 0) return;
    const batch = state.pending;
    state.pending = [];
    state.pendingBytes = 0;
    let result: AppendResult;
    try {
      result = await append(state, batch, batchId(state.record.key, batch));
    } catch (error) {
      // The batch was stored by an earlier run and removed from the target since: the target is
      // to hold what the source holds, so it is stored again, without the id that refuses it.
      if (!(error instanceof ConflictError && error.removed)) throw error;
      result = await append(state, batch, undefined);
    }
    state.lastSeq = result.messages.at(-1)!.seq;
    summary.imported += batch.length;
    report();
  }

  async function guarded(state: SessionState, work: () => Promise<void>): Promise<void> {
    if (state.failed) return;
    try {
      await work();
    } catch (error) {
      // Unavailable past its retries ends the run (a rerun resumes); what the session itself
      // caused (a guard, a cap, a key collision) ends only that session.
      if (!isAppError(error) || error instanceof UnavailableError) throw error;
      fail(state, error);
    }
  }

  async function onMessage(state: SessionState, message: ExportMessage): Promise<void> {
    if (state.failed) return;
    await guarded(state, async () => {
      const target = await nextTarget(state);
      if (target !== null) {
        if (target.role !== message.role || target.content !== message.content) {
          throw new ConflictError(
            `the target's session ${JSON.stringify(state.record.key)} holds other messages than the source ` +
              `from its seq ${target.seq} on; delete it there to import it again`,
          );
        }
        state.lastSeq = target.seq;
        summary.present++;
        return;
      }
      state.pending.push(message);
      state.pendingBytes += message.content.length;
      if (state.pending.length >= batchSize || state.pendingBytes >= batchBytes) await flush(state);
    });
  }

  async function startSession(record: ExportSession): Promise<SessionState> {
    const state: SessionState = {
      record,
      lastSeq: null,
      target: [],
      targetHasMore: true,
      pending: [],
      pendingBytes: 0,
      failed: false,
    };
    await guarded(state, async () => {
      const existing = await call(() => backend.session(record.key));
      if (existing === null || existing.messageCount === 0) {
        state.target = null;
        state.lastSeq = existing?.lastSeq ?? null;
      }
    });
    return state;
  }

  /** @param whole false when the stream broke off inside this session: its times wait for a rerun */
  async function finishSession(state: SessionState, whole: boolean): Promise<void> {
    await guarded(state, async () => {
      await flush(state);
      if (state.failed || !whole) return;
      if ((await nextTarget(state)) !== null) {
        summary.ahead.push(state.record.key);
        return;
      }
      const { key, name, createdAt, lastActivityAt } = state.record;
      if (backend.restoreSession) {
        await call(() => backend.restoreSession!(key, { name, createdAt, lastActivityAt }));
      } else {
        await call(() => backend.renameSession(key, name));
      }
    });
    progress.sessions++;
    report();
  }

  let header: ExportHeader | null = null;
  let session: SessionState | null = null;
  let end: { sessions: number; messages: number } | null = null;
  let lineNumber = 0;
  for await (const text of lines) {
    lineNumber++;
    if (text.length === 0) continue;
    const line = decodeLine(text, lineNumber);
    if (header === null && line.type !== 'header') {
      throw new InvalidInputError('the stream does not start with a sessiongraph export header', 'input');
    }
    if (end !== null)
      throw new InvalidInputError(`export line ${lineNumber}: data after the end line`, 'input');
    switch (line.type) {
      case 'header':
        if (header !== null)
          throw new InvalidInputError(`export line ${lineNumber}: a second header`, 'input');
        header = line;
        progress.totalSessions = line.sessions;
        progress.totalMessages = line.messages;
        report();
        break;
      case 'session':
        if (session) await finishSession(session, true);
        summary.sessions++;
        session = await startSession(line);
        break;
      case 'message':
        if (!session)
          throw new InvalidInputError(`export line ${lineNumber}: a message before any session`, 'input');
        messagesRead++;
        await onMessage(session, line);
        break;
      case 'end':
        end = line;
        break;
    }
  }
  if (header === null) throw new InvalidInputError('the stream is empty: no export header', 'input');
  if (session) await finishSession(session, end !== null);
  summary.complete = end !== null && end.sessions === summary.sessions && end.messages === messagesRead;
  return summary;
}
