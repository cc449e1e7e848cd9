/**
 * Writes that act on a whole session: compact, delete, rename, and the TTL cleanup. Each takes one
 * `input` and returns its payload or one of the typed errors in its result union.
 */

import { encodeGlobalID } from '@pothos/plugin-relay';
import type { CompactResult, SessionInfo } from '../backends/backend.js';
import { MAX_TTL_HOURS, validateTtlHours } from '../backends/validate.js';
import { ForbiddenError, InvalidInputError, NotFoundError, UnavailableError } from '../errors.js';
import { builder } from './builder.js';
import { afterWrite } from './context.js';
import { KEY_ERRORS } from './errors.js';
import { Session } from './session.js';

const SessionKeyInput = (name: string, description: string) =>
  builder.inputType(name, {
    description,
    fields: (t) => ({ sessionKey: t.string({ required: true, description: 'The raw session key.' }) }),
  });

const CompactSessionInput = SessionKeyInput('CompactSessionInput', 'The session to compact.');
const DeleteSessionInput = SessionKeyInput('DeleteSessionInput', 'The session to delete.');

const RenameSessionInput = builder.inputType('RenameSessionInput', {
  description: 'A session and its new label.',
  fields: (t) => ({
    sessionKey: t.string({
      required: true,
      description: 'The raw session key; a new key creates an empty session.',
    }),
    name: t.string({ description: 'The new label (up to 256 bytes); null or empty clears it.' }),
  }),
});

const CleanupStaleSessionsInput = builder.inputType('CleanupStaleSessionsInput', {
  description: 'How idle a session must be to be removed.',
  fields: (t) => ({
    ttlHours: t.float({
      required: true,
      description:
        'Remove every session whose last activity is older than this many hours: more than 0, at ' +
        `most ${MAX_TTL_HOURS} (1,000 years). Out of range: an InvalidInputError result naming ` +
        '`ttlHours`.',
    }),
  }),
});

const CompactSessionPayload = builder.objectRef<CompactResult>('CompactSessionPayload').implement({
  description: 'What compaction dropped and the session after it.',
  fields: (t) => ({
    droppedCount: t.int({
      description: 'Unreadable entries removed (JSONL corrupt lines). Readable messages are never lost.',
      resolve: (p) => p.dropped,
    }),
    session: t.field({
      type: Session,
      description: 'The session after compaction.',
      resolve: (p) => p.session,
    }),
  }),
});

const DeleteSessionPayload = builder.objectRef<{ key: string }>('DeleteSessionPayload').implement({
  description: 'Which session is gone, to evict from client caches.',
  fields: (t) => ({
    deletedSessionKey: t.exposeString('key', { description: 'The key of the deleted session.' }),
    deletedSessionId: t.id({
      description: 'The global id the deleted session had.',
      resolve: (p) => encodeGlobalID('Session', p.key),
    }),
  }),
});

const RenameSessionPayload = builder.objectRef<SessionInfo>('RenameSessionPayload').implement({
  description: 'The session with its new label.',
  fields: (t) => ({
    session: t.field({ type: Session, description: 'The session after the rename.', resolve: (s) => s }),
  }),
});

const CleanupStaleSessionsPayload = builder.objectRef<string[]>('CleanupStaleSessionsPayload').implement({
  description: 'Which sessions the cleanup removed.',
  fields: (t) => ({
    deletedSessionKeys: t.stringList({
      description: 'Keys of the removed sessions.',
      resolve: (keys) => keys,
    }),
    deletedCount: t.int({ description: 'How many sessions were removed.', resolve: (keys) => keys.length }),
  }),
});

builder.mutationFields((t) => ({
  compactSession: t.field({
    type: CompactSessionPayload,
    description:
      'Drops unreadable entries of a session (JSONL: corrupt lines; SQLite: invalid rows, with an FTS ' +
      'integrity check). Readable messages are never lost.',
    authScopes: { admin: true },
    errors: { types: [NotFoundError, ...KEY_ERRORS] },
    args: {
      input: t.arg({
        type: CompactSessionInput,
        required: true,
        description: 'All arguments of this mutation, in one object.',
      }),
    },
    resolve: (_root, { input }, ctx) => afterWrite(ctx, ctx.backend.compact(input.sessionKey)),
  }),
  deleteSession: t.field({
    type: DeleteSessionPayload,
    description: 'Deletes a session with all its messages, its name and its idempotency records.',
    authScopes: { admin: true },
    errors: { types: [NotFoundError, ...KEY_ERRORS] },
    args: {
      input: t.arg({
        type: DeleteSessionInput,
        required: true,
        description: 'All arguments of this mutation, in one object.',
      }),
    },
    resolve: async (_root, { input }, ctx) => {
      await afterWrite(ctx, ctx.backend.deleteSession(input.sessionKey));
      return { key: input.sessionKey };
    },
  }),
  renameSession: t.field({
    type: RenameSessionPayload,
    description: 'Sets or clears the label of a session; a session that does not exist yet is created empty.',
    authScopes: { write: true },
    errors: { types: KEY_ERRORS },
    args: {
      input: t.arg({
        type: RenameSessionInput,
        required: true,
        description: 'All arguments of this mutation, in one object.',
      }),
    },
    resolve: (_root, { input }, ctx) =>
      afterWrite(ctx, ctx.backend.renameSession(input.sessionKey, input.name ?? null)),
  }),
  cleanupStaleSessions: t.field({
    type: CleanupStaleSessionsPayload,
    description: 'Removes, in one transaction, every session idle for longer than `ttlHours`.',
    authScopes: { admin: true },
    errors: { types: [ForbiddenError, InvalidInputError, UnavailableError] },
    args: {
      input: t.arg({
        type: CleanupStaleSessionsInput,
        required: true,
        description: 'All arguments of this mutation, in one object.',
      }),
    },
    resolve: (_root, { input }, ctx) => {
      // Checked here, not by a zod rule, so a refusal is this union's InvalidInputError member.
      validateTtlHours(input.ttlHours);
      return afterWrite(ctx, ctx.backend.cleanupStale(input.ttlHours));
    },
  }),
}));
