/**
 * The export format of `sessiongraph export` / `import`: JSON lines, UTF-8, one object per line.
 *
 * ```
 * {"type":"header","format":"sessiongraph-export","version":1,"exportedAt":…,"source":{…},"sessions":2,"messages":5}
 * {"type":"session","key":"telegram_1_alice","name":null,"createdAt":…,"lastActivityAt":…,"messageCount":3}
 * {"type":"message","seq":1,"role":"user","content":"hi","createdAt":"2026-03-24T21:51:41.123456789+00:00"}
 * …                                  (the session's messages, in seq order, then the next session)
 * {"type":"end","sessions":2,"messages":5}
 * ```
 * The header's counts are what the source held when the export started (a progress total); the
 * `end` line's are what was written, and its absence marks a truncated export. A message belongs
 * to the session line before it. Times are the source's text (null where it has none: JSONL
 * messages); `seq` is the source's, for reference only.
 */

import { InvalidInputError } from '../../errors.js';
import type { BackendInfo } from '../backend.js';

export const EXPORT_FORMAT = 'sessiongraph-export';
export const EXPORT_VERSION = 1;

export interface ExportHeader {
  type: 'header';
  format: typeof EXPORT_FORMAT;
  version: typeof EXPORT_VERSION;
  exportedAt: string;
  source: { kind: BackendInfo['kind']; version: string };
  sessions: number;
  messages: number;
}

export interface ExportSession {
  type: 'session';
  key: string;
  name: string | null;
  createdAt: string | null;
  lastActivityAt: string | null;
  messageCount: number;
}

export interface ExportMessage {
  type: 'message';
  seq: number;
  role: string;
  content: string;
  createdAt: string | null;
}

export interface ExportEnd {
  type: 'end';
  sessions: number;
  messages: number;
}

export type ExportLine = ExportHeader | ExportSession | ExportMessage | ExportEnd;

export function encodeLine(line: ExportLine): string {
  return `${JSON.stringify(line)}\n`;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isTime = (v: unknown): v is string | null => v === null || typeof v === 'string';
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * One line of an export, checked field by field; InvalidInputError names the line number. Unknown
 * fields are ignored, so a later minor version can add some.
 */
export function decodeLine(text: string, lineNumber: number): ExportLine {
  const fail = (why: string): never => {
    throw new InvalidInputError(`export line ${lineNumber}: ${why}`, 'input');
  };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail('not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('not an object');
  const v = value as Record<string, unknown>;
  switch (v.type) {
    case 'message':
      if (!isCount(v.seq) || !isString(v.role) || !isString(v.content) || !isTime(v.createdAt)) {
        return fail('a message needs seq, role, content and createdAt');
      }
      return { type: 'message', seq: v.seq, role: v.role, content: v.content, createdAt: v.createdAt };
    case 'session':
      if (
        !isString(v.key) ||
        !(v.name === null || isString(v.name)) ||
        !isTime(v.createdAt) ||
        !isTime(v.lastActivityAt) ||
        !isCount(v.messageCount)
      ) {
        return fail('a session needs key, name, createdAt, lastActivityAt and messageCount');
      }
      return {
        type: 'session',
        key: v.key,
        name: v.name,
        createdAt: v.createdAt,
        lastActivityAt: v.lastActivityAt,
        messageCount: v.messageCount,
      };
    case 'header': {
      if (v.format !== EXPORT_FORMAT) return fail(`not a ${EXPORT_FORMAT} stream`);
      if (v.version !== EXPORT_VERSION) {
        return fail(
          `format version ${String(v.version)} is not supported (this build reads ${EXPORT_VERSION})`,
        );
      }
      const source = v.source as Record<string, unknown> | null;
      if (
        !isString(v.exportedAt) ||
        !isCount(v.sessions) ||
        !isCount(v.messages) ||
        !isString(source?.kind)
      ) {
        return fail('a header needs exportedAt, source, sessions and messages');
      }
      return {
        type: 'header',
        format: EXPORT_FORMAT,
        version: EXPORT_VERSION,
        exportedAt: v.exportedAt,
        source: { kind: source.kind as BackendInfo['kind'], version: String(source.version ?? '') },
        sessions: v.sessions,
        messages: v.messages,
      };
    }
    case 'end':
      if (!isCount(v.sessions) || !isCount(v.messages))
        return fail('an end line needs sessions and messages');
      return { type: 'end', sessions: v.sessions, messages: v.messages };
    default:
      return fail(`unknown line type ${JSON.stringify(v.type)}`);
  }
}
