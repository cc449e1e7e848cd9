import pg from 'pg';
import { InvalidInputError } from '../../errors.js';
import type { StoreLimits } from '../backend.js';
import { validateKey } from '../validate.js';
import type { ChangeChannel } from './change-notify.js';
import type { PgRunner } from './pg-runner.js';

/** Schema-qualified, quoted names: every statement names its schema, none relies on search_path. */
export interface PgTables {
  schema: string;
  sessions: string;
  messages: string;
  idempotency: string;
  /** Tombstones of deleted sessions, for listeners catching up (change-notify.ts). */
  deleted: string;
  /** The message id sequence as a string literal, for `nextval(...)`. */
  messageSeq: string;
}

/** What every part of the PostgreSQL backend works with. */
export interface PgContext {
  db: PgRunner;
  t: PgTables;
  limits: StoreLimits;
  /** Where every write announces itself to the other instances. */
  changes: ChangeChannel;
}

/** Plain identifiers only, so a schema name never needs more than quoting (63: NAMEDATALEN - 1). */
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function pgTables(schema: string): PgTables {
  if (!SCHEMA_NAME.test(schema)) {
    throw new InvalidInputError('schema must be a plain identifier of at most 63 characters', 'schema');
  }
  const q = pg.escapeIdentifier(schema);
  return {
    schema: q,
    sessions: `${q}.sessions`,
    messages: `${q}.messages`,
    idempotency: `${q}.idempotency_records`,
    deleted: `${q}.deleted_sessions`,
    messageSeq: pg.escapeLiteral(`${q}.message_seq`),
  };
}

/** Reads never fail on a key that could not have been stored: it simply holds nothing. */
export function isStorableKey(key: unknown, limits: StoreLimits): key is string {
  try {
    validateKey(key, limits);
    return true;
  } catch {
    return false;
  }
}
