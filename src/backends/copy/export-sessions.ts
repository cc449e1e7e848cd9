/**
 * `sessiongraph export`: every session of a backend and its messages as export lines
 * (export-format.ts), read through the SessionBackend interface only, so any backend exports.
 * Sessions come in key order: unlike activity order, it does not shift while the source is being
 * written, so a live store pages without skipping or repeating a session.
 */

import type { SessionBackend, SessionCursor, SessionInfo } from '../backend.js';
import { nowTimestamp } from '../timestamps.js';
import { EXPORT_FORMAT, EXPORT_VERSION, encodeLine } from './export-format.js';

export interface CopyProgress {
  /** Sessions finished so far. */
  sessions: number;
  /** Messages handled so far (imports: read from the stream). */
  messages: number;
  /** What the source held when the export started; null when unknown. */
  totalSessions: number | null;
  totalMessages: number | null;
}

export interface ExportOptions {
  /** Only sessions whose key starts with this. */
  keyPrefix?: string | undefined;
  /** @default 500 // sessions or messages per read; at most the backend's maxPageSize */
  pageSize?: number | undefined;
  /** Called after each page of messages and after each session. */
  onProgress?: ((progress: CopyProgress) => void) | undefined;
}

export interface ExportTotals {
  sessions: number;
  messages: number;
}

async function* listSessions(
  backend: SessionBackend,
  keyPrefix: string | undefined,
  pageSize: number,
): AsyncGenerator<SessionInfo> {
  let after: SessionCursor | undefined;
  for (;;) {
    const page = await backend.sessions({
      order: 'KEY_ASC',
      first: pageSize,
      ...(after && { after }),
      ...(keyPrefix !== undefined && { filter: { keyPrefix } }),
    });
    yield* page.items;
    const last = page.items.at(-1);
    if (!page.hasNextPage || !last) return;
    after = { key: last.key, lastActivityAt: last.lastActivityAt };
  }
}

/** Lines of the export, header first and `end` last; the consumer's pace drives the reads. */
export async function* exportSessions(
  backend: SessionBackend,
  options: ExportOptions = {},
): AsyncGenerator<string, ExportTotals> {
  const pageSize = options.pageSize ?? 500;
  let totalSessions = 0;
  let totalMessages = 0;
  for await (const session of listSessions(backend, options.keyPrefix, pageSize)) {
    totalSessions++;
    totalMessages += session.messageCount;
  }
  const info = backend.info();
  yield encodeLine({
    type: 'header',
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    exportedAt: nowTimestamp(),
    source: { kind: info.kind, version: info.version },
    sessions: totalSessions,
    messages: totalMessages,
  });

  const progress: CopyProgress = { sessions: 0, messages: 0, totalSessions, totalMessages };
  for await (const session of listSessions(backend, options.keyPrefix, pageSize)) {
    yield encodeLine({
      type: 'session',
      key: session.key,
      name: session.name,
      createdAt: session.createdAt,
      lastActivityAt: session.lastActivityAt,
      messageCount: session.messageCount,
    });
    let afterSeq: number | undefined;
    for (;;) {
      const page = await backend.messages(session.key, {
        first: pageSize,
        ...(afterSeq !== undefined && { afterSeq }),
      });
      for (const m of page.items) {
        yield encodeLine({
          type: 'message',
          seq: m.seq,
          role: m.role,
          content: m.content,
          createdAt: m.createdAt,
        });
      }
      progress.messages += page.items.length;
      afterSeq = page.items.at(-1)?.seq;
      if (!page.hasNextPage || afterSeq === undefined) break;
      options.onProgress?.({ ...progress });
    }
    progress.sessions++;
    options.onProgress?.({ ...progress });
  }
  yield encodeLine({ type: 'end', sessions: progress.sessions, messages: progress.messages });
  return { sessions: progress.sessions, messages: progress.messages };
}
