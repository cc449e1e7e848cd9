/**
 * Input checks every backend runs before touching storage, so that each bad input gets the same
 * typed error everywhere and nothing is stored.
 */

import { InvalidInputError, TooLargeError } from '../errors.js';
import type { MessagePageArgs, NewMessage, SessionRecord, StoreLimits } from './backend.js';
import { canonicalTimestamp, parseTimestamp, timestampProblemText } from './timestamps.js';

const LONE_SURROGATE = /\p{Surrogate}/u;

/** @default 64 // bytes of UTF-8 per role */
export const MAX_ROLE_BYTES = 64;
/** @default 256 // bytes of UTF-8 per clientMessageId and per session name */
export const MAX_ID_BYTES = 256;

function checkText(value: unknown, field: string): asserts value is string {
  if (typeof value !== 'string') throw new InvalidInputError(`${field} must be a string`, field);
  if (value.includes('\u0000'))
    throw new InvalidInputError(`${field} must not contain NUL characters`, field);
  if (LONE_SURROGATE.test(value)) {
    throw new InvalidInputError(`${field} must be well-formed Unicode (it has a lone surrogate)`, field);
  }
}

function checkBytes(value: string, field: string, limit: number): void {
  // Cheap first: a UTF-8 string is at most 3 bytes per UTF-16 unit.
  if (value.length * 3 <= limit) return;
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > limit) {
    throw new TooLargeError(
      `${field} is ${bytes} bytes; the limit is ${limit}`,
      field,
      limit,
      bytes,
      'bytes',
    );
  }
}

export function validateKey(key: unknown, limits: StoreLimits, field = 'sessionKey'): string {
  checkText(key, field);
  if (key.length === 0) throw new InvalidInputError(`${field} must not be empty`, field);
  checkBytes(key, field, limits.maxKeyBytes);
  return key;
}

export function validateMessages(messages: readonly NewMessage[], limits: StoreLimits): void {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new InvalidInputError('an append needs at least one message', 'messages');
  }
  if (messages.length > limits.maxBatchMessages) {
    throw new TooLargeError(
      `a batch holds at most ${limits.maxBatchMessages} messages; got ${messages.length}`,
      'messages',
      limits.maxBatchMessages,
      messages.length,
      'messages',
    );
  }
  messages.forEach((message, i) => {
    const at = messages.length === 1 ? '' : `messages[${i}].`;
    checkText(message?.role, `${at}role`);
    if (message.role.length === 0) throw new InvalidInputError('role must not be empty', `${at}role`);
    checkBytes(message.role, `${at}role`, MAX_ROLE_BYTES);
    checkText(message.content, `${at}content`);
    checkBytes(message.content, `${at}content`, limits.maxContentBytes);
    if (message.createdAt !== undefined) validateTimestamp(message.createdAt, `${at}createdAt`);
  });
}

/** A validated message, copied so the caller can no longer change it; createdAt canonical. */
export function copyMessage({ role, content, createdAt }: NewMessage): NewMessage {
  return createdAt === undefined
    ? { role, content }
    : { role, content, createdAt: canonicalTimestamp(createdAt)! };
}

/** An RFC 3339 timestamp within the range every backend stores, as canonical text (timestamps.ts). */
export function validateTimestamp(value: unknown, field: string): string {
  const parsed = typeof value === 'string' ? parseTimestamp(value) : { problem: 'format' as const };
  if ('problem' in parsed) throw new InvalidInputError(timestampProblemText(field, parsed.problem), field);
  return parsed.canonical;
}

/** A validated copy of a session record, its times canonical. */
export function validateSessionRecord(record: SessionRecord): SessionRecord {
  if (typeof record !== 'object' || record === null) {
    throw new InvalidInputError('a session record is required', 'record');
  }
  const time = (value: string | null, field: string) =>
    value === null || value === undefined ? null : validateTimestamp(value, field);
  return {
    name: validateName(record.name ?? null),
    createdAt: time(record.createdAt, 'createdAt'),
    lastActivityAt: time(record.lastActivityAt, 'lastActivityAt'),
  };
}

export function validateClientMessageId(id: unknown): string | undefined {
  if (id === undefined || id === null) return undefined;
  checkText(id, 'clientMessageId');
  if (id.length === 0) throw new InvalidInputError('clientMessageId must not be empty', 'clientMessageId');
  checkBytes(id, 'clientMessageId', MAX_ID_BYTES);
  return id;
}

export function validateName(name: string | null): string | null {
  if (name === null || name === '') return null;
  checkText(name, 'name');
  checkBytes(name, 'name', MAX_ID_BYTES);
  return name;
}

function checkCount(value: number | undefined, field: string, limits: StoreLimits): void {
  if (value === undefined) return;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidInputError(`${field} must be a non-negative integer`, field);
  }
  if (value > limits.maxPageSize) {
    throw new TooLargeError(
      `${field} is at most ${limits.maxPageSize}; got ${value}`,
      field,
      limits.maxPageSize,
      value,
      'items',
    );
  }
}

export function checkSeq(value: number | undefined | null, field: string): void {
  if (value === undefined || value === null) return;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidInputError(`${field} must be a non-negative integer`, field);
  }
}

/** Validates a page request; returns the direction and size to read. */
export function resolvePage(
  args: { first?: number; last?: number },
  limits: StoreLimits,
  defaultSize: number,
): { forward: boolean; size: number } {
  checkCount(args.first, 'first', limits);
  checkCount(args.last, 'last', limits);
  if (args.first !== undefined && args.last !== undefined) {
    throw new InvalidInputError('pass either first or last, not both', 'last');
  }
  if (args.last !== undefined) return { forward: false, size: args.last };
  return { forward: true, size: args.first ?? defaultSize };
}

export function validateMessagePage(args: MessagePageArgs, limits: StoreLimits, defaultSize: number) {
  checkSeq(args.afterSeq, 'after');
  checkSeq(args.beforeSeq, 'before');
  return resolvePage(args, limits, defaultSize);
}

/**
 * The longest session TTL: 1,000 years of 365.25 days. The cutoff (now - TTL) must be an instant
 * every backend can compute and compare: timestamps.ts takes years 0000 to 9999, and PostgreSQL's
 * interval arithmetic overflowed from 1e8 hours. A fixed bound, rather than one that moves with
 * the clock, so a TTL valid today stays valid; 1,000 years keeps the cutoff in range for any
 * clock between the years 1000 and 9999.
 * @default 8_766_000 // hours
 */
export const MAX_TTL_HOURS = 8_766_000;

export function validateTtlHours(ttlHours: unknown): asserts ttlHours is number {
  if (typeof ttlHours !== 'number' || !Number.isFinite(ttlHours) || ttlHours <= 0) {
    throw new InvalidInputError('ttlHours must be a positive number of hours', 'ttlHours');
  }
  if (ttlHours > MAX_TTL_HOURS) {
    throw new InvalidInputError(
      `ttlHours must be at most ${MAX_TTL_HOURS.toLocaleString('en')} (1,000 years); got ${ttlHours}`,
      'ttlHours',
    );
  }
}
