import { appendFileSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sanitizeKey } from '../../src/backends/keys.js';
import { toTimestamp } from '../../src/backends/timestamps.js';
import { type Json, startTestServer, type TestServer } from '../helpers/server.js';

/** The error selection for a result union holding these error types (besides BaseError). */
const errors = (...types: string[]) =>
  [
    '__typename ... on Error { code message }',
    types.includes('ConflictError') && '... on ConflictError { expectedLastSeq actualLastSeq }',
    '... on InvalidInputError { field } ... on TooLargeError { field limit actual unit }',
    '... on KeyCollisionError { sessionKey existingKey }',
    types.includes('NotFoundError') && '... on NotFoundError { sessionKey }',
  ]
    .filter(Boolean)
    .join(' ');

const APPEND = `mutation ($input: AppendMessageInput!) { appendMessage(input: $input) { ${errors('ConflictError')}
  ... on AppendMessagePayload { replayed appendedMessage { id seq role content createdAt sessionKey }
    messageEdge { cursor node { seq } } session { key messageCount lastSeq } } } }`;

const APPEND_MANY = `mutation ($input: AppendMessagesInput!) { appendMessages(input: $input) { ${errors('ConflictError')}
  ... on AppendMessagesPayload { replayed appendedMessages { seq content } messageEdges { cursor }
    session { key messageCount lastSeq } } } }`;

const REMOVE_LAST = `mutation ($input: RemoveLastMessageInput!) { removeLastMessage(input: $input) { ${errors('ConflictError', 'NotFoundError')}
  ... on RemoveLastMessagePayload { removedMessage { seq content } session { messageCount lastSeq } } } }`;

const COMPACT = `mutation ($input: CompactSessionInput!) { compactSession(input: $input) { ${errors('NotFoundError')}
  ... on CompactSessionPayload { droppedCount session { messageCount unreadableCount } } } }`;

const DELETE = `mutation ($input: DeleteSessionInput!) { deleteSession(input: $input) { ${errors('NotFoundError')}
  ... on DeleteSessionPayload { deletedSessionKey deletedSessionId } } }`;

const RENAME = `mutation ($input: RenameSessionInput!) { renameSession(input: $input) { ${errors()}
  ... on RenameSessionPayload { session { key name messageCount lastSeq } } } }`;

const CLEANUP = `mutation ($input: CleanupStaleSessionsInput!) { cleanupStaleSessions(input: $input) { __typename ... on Error { code message } ... on InvalidInputError { field }
  ... on CleanupStaleSessionsPayload { deletedSessionKeys deletedCount } } }`;

describe.each(['sqlite', 'jsonl'] as const)('mutations over HTTP: %s', (kind) => {
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer(kind, { limits: { maxContentBytes: 1_000, maxBatchMessages: 5 } });
  });
  afterAll(() => t?.close());

  const append = async (input: Record<string, unknown>) =>
    (await t.gql(APPEND, { input })).data?.appendMessage;

  it('appends one message and returns it with the session', async () => {
    const r = await append({ sessionKey: 'gw_append', role: 'user', content: 'hello <world>' });
    expect(r).toMatchObject({
      __typename: 'AppendMessagePayload',
      replayed: false,
      appendedMessage: { role: 'user', content: 'hello <world>', sessionKey: 'gw_append' },
      session: { key: 'gw_append', messageCount: 1 },
    });
    expect(r.session.lastSeq).toBe(r.appendedMessage.seq);
    expect(r.messageEdge.node.seq).toBe(r.appendedMessage.seq);
    if (kind === 'sqlite') expect(r.appendedMessage.createdAt).toMatch(/\+00:00$/);
    else expect(r.appendedMessage.createdAt).toBeNull();
  });

  it('runs several mutations of one document in order, each payload reading fresh data', async () => {
    const step = (
      alias: string,
      content: string,
    ) => `${alias}: appendMessage(input: { sessionKey: "gw_two", role: "user",
      content: "${content}" }) { ... on AppendMessagePayload { session { messageCount estimatedTokens
      lastMessage { content } } appendedMessage { session { messageCount } } } }`;
    const r = await t.gql(`mutation { ${step('a', 'first')} ${step('b', 'second message')} }`);
    expect(r.errors).toBeUndefined();
    expect(r.data?.a.session).toEqual({
      messageCount: 1,
      estimatedTokens: 2,
      lastMessage: { content: 'first' },
    });
    expect(r.data?.b.session).toEqual({
      messageCount: 2,
      estimatedTokens: Math.ceil('firstsecond message'.length / 4),
      lastMessage: { content: 'second message' },
    });
    expect(r.data?.b.appendedMessage.session.messageCount).toBe(2);
  });

  it('appends a batch atomically: all or none', async () => {
    const ok = (
      await t.gql(APPEND_MANY, {
        input: {
          sessionKey: 'gw_batch',
          messages: [
            { role: 'user', content: 'a' },
            { role: 'assistant', content: 'b' },
          ],
        },
      })
    ).data?.appendMessages;
    expect(ok.appendedMessages.map((m: Json) => m.content)).toEqual(['a', 'b']);
    expect(ok.messageEdges).toHaveLength(2);
    expect(ok.session).toMatchObject({ messageCount: 2, lastSeq: ok.appendedMessages[1].seq });
    const bad = (
      await t.gql(APPEND_MANY, {
        input: {
          sessionKey: 'gw_batch',
          messages: [
            { role: 'user', content: 'c' },
            { role: '', content: 'd' },
          ],
        },
      })
    ).data?.appendMessages;
    expect(bad).toMatchObject({
      __typename: 'InvalidInputError',
      code: 'INVALID',
      field: 'messages[1].role',
    });
    const tooMany = (
      await t.gql(APPEND_MANY, {
        input: {
          sessionKey: 'gw_batch',
          messages: Array.from({ length: 6 }, () => ({ role: 'user', content: 'x' })),
        },
      })
    ).data?.appendMessages;
    expect(tooMany).toMatchObject({
      __typename: 'TooLargeError',
      code: 'TOO_LARGE',
      limit: 5,
      actual: 6,
      unit: 'MESSAGES',
    });
    expect((await t.gql('{ session(key: "gw_batch") { messageCount } }')).data?.session.messageCount).toBe(2);
  });

  it('stores a retried append once (clientMessageId), also when the retries race', async () => {
    const input = { sessionKey: 'gw_retry', role: 'user', content: 'only once', clientMessageId: 'c-1' };
    const results = await Promise.all([append(input), append(input), append(input)]);
    expect(new Set(results.map((r) => r.appendedMessage.seq)).size).toBe(1);
    expect(results.filter((r) => r.replayed === false)).toHaveLength(1);
    const again = await append(input);
    expect(again).toMatchObject({
      replayed: true,
      appendedMessage: { seq: results[0].appendedMessage.seq, content: 'only once' },
    });
    expect((await t.gql('{ session(key: "gw_retry") { messageCount } }')).data?.session.messageCount).toBe(1);
    const other = await append({ ...input, content: 'something else' });
    expect(other).toMatchObject({ __typename: 'ConflictError', code: 'CONFLICT', expectedLastSeq: null });
  });

  it('answers a retry whose messages were removed since with a typed CONFLICT, storing nothing', async () => {
    const one = { sessionKey: 'gw_retry_removed', role: 'user', content: 'undone', clientMessageId: 'c-1' };
    expect((await append(one)).replayed).toBe(false);
    const many = {
      sessionKey: 'gw_retry_removed',
      messages: [{ role: 'user', content: 'b' }],
      clientMessageId: 'c-2',
    };
    expect((await t.gql(APPEND_MANY, { input: many })).data?.appendMessages.replayed).toBe(false);
    for (let i = 0; i < 2; i++) {
      const removed = await t.gql(REMOVE_LAST, { input: { sessionKey: 'gw_retry_removed' } });
      expect(removed.data?.removeLastMessage.__typename).toBe('RemoveLastMessagePayload');
    }
    await append({ sessionKey: 'gw_retry_removed', role: 'user', content: 'later' });
    expect(await append(one)).toMatchObject({ __typename: 'ConflictError', code: 'CONFLICT' });
    expect((await t.gql(APPEND_MANY, { input: many })).data?.appendMessages).toMatchObject({
      __typename: 'ConflictError',
      code: 'CONFLICT',
    });
    const session = await t.gql('{ session(key: "gw_retry_removed") { messageCount lastSeq } }');
    expect(session.data?.session).toMatchObject({ messageCount: 1 });
  });

  it('guards appends with expectedLastSeq (0: the session must be empty)', async () => {
    const first = await append({ sessionKey: 'gw_guard', role: 'user', content: 'one', expectedLastSeq: 0 });
    expect(first.__typename).toBe('AppendMessagePayload');
    const stale = await append({ sessionKey: 'gw_guard', role: 'user', content: 'x', expectedLastSeq: 0 });
    expect(stale).toMatchObject({
      __typename: 'ConflictError',
      expectedLastSeq: 0,
      actualLastSeq: first.appendedMessage.seq,
    });
    const next = await append({
      sessionKey: 'gw_guard',
      role: 'user',
      content: 'two',
      expectedLastSeq: first.appendedMessage.seq,
    });
    expect(next.__typename).toBe('AppendMessagePayload');
    const negative = await t.gql(APPEND, {
      input: { sessionKey: 'gw_guard', role: 'u', content: 'x', expectedLastSeq: -1 },
    });
    expect(negative.errors?.[0]?.extensions).toMatchObject({ code: 'INVALID' });
  });

  it('lets exactly one of two racing clients remove the last message', async () => {
    await append({ sessionKey: 'gw_race', role: 'user', content: 'keep' });
    const last = await append({ sessionKey: 'gw_race', role: 'assistant', content: 'retract me' });
    const seq = last.appendedMessage.seq;
    const outcomes = await Promise.all(
      [1, 2].map(
        async () =>
          (await t.gql(REMOVE_LAST, { input: { sessionKey: 'gw_race', expectedLastSeq: seq } })).data
            ?.removeLastMessage,
      ),
    );
    const won = outcomes.filter((o) => o.__typename === 'RemoveLastMessagePayload');
    const lost = outcomes.filter((o) => o.__typename === 'ConflictError');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(won[0].removedMessage).toEqual({ seq, content: 'retract me' });
    expect(lost[0]).toMatchObject({ code: 'CONFLICT', expectedLastSeq: seq });
    expect((await t.gql('{ session(key: "gw_race") { messageCount } }')).data?.session.messageCount).toBe(1);
  });

  it('removes the last message, reports an empty session and an unknown one', async () => {
    await append({ sessionKey: 'gw_remove', role: 'user', content: 'only' });
    const removed = (await t.gql(REMOVE_LAST, { input: { sessionKey: 'gw_remove' } })).data
      ?.removeLastMessage;
    expect(removed).toMatchObject({
      removedMessage: { content: 'only' },
      session: { messageCount: 0, lastSeq: 0 },
    });
    const empty = (await t.gql(REMOVE_LAST, { input: { sessionKey: 'gw_remove' } })).data?.removeLastMessage;
    expect(empty).toMatchObject({ __typename: 'RemoveLastMessagePayload', removedMessage: null });
    const unknown = (await t.gql(REMOVE_LAST, { input: { sessionKey: 'gw_nobody' } })).data
      ?.removeLastMessage;
    expect(unknown).toMatchObject({ __typename: 'NotFoundError', code: 'NOT_FOUND' });
  });

  it('refuses oversize content and bad keys with typed errors, storing nothing', async () => {
    const big = await append({ sessionKey: 'gw_big', role: 'user', content: 'é'.repeat(501) });
    expect(big).toMatchObject({
      __typename: 'TooLargeError',
      field: 'content',
      limit: 1_000,
      actual: 1_002,
      unit: 'BYTES',
    });
    const nul = await append({ sessionKey: 'a\u0000b', role: 'user', content: 'x' });
    expect(nul).toMatchObject({ __typename: 'InvalidInputError', field: 'sessionKey' });
    const empty = await append({ sessionKey: '', role: 'user', content: 'x' });
    expect(empty.__typename).toBe('InvalidInputError');
    expect((await t.gql('{ session(key: "gw_big") { key } }')).data?.session).toBeNull();
  });

  it('compacts a session', async () => {
    await append({ sessionKey: 'gw_compact', role: 'user', content: 'kept' });
    if (kind === 'jsonl')
      appendFileSync(join(t.dataDir, 'sessions', 'gw_compact.jsonl'), '{"role": broken\n');
    await append({ sessionKey: 'gw_compact', role: 'user', content: 'also kept' });
    const dirty = (await t.gql('{ session(key: "gw_compact") { messageCount unreadableCount } }')).data
      ?.session;
    expect(dirty).toEqual({ messageCount: 2, unreadableCount: kind === 'jsonl' ? 1 : dirty.unreadableCount });
    const r = (await t.gql(COMPACT, { input: { sessionKey: 'gw_compact' } })).data?.compactSession;
    expect(r).toMatchObject({ droppedCount: kind === 'jsonl' ? 1 : 0, session: { messageCount: 2 } });
    if (kind === 'jsonl') expect(r.session.unreadableCount).toBe(0);
    const unknown = (await t.gql(COMPACT, { input: { sessionKey: 'gw_nobody' } })).data?.compactSession;
    expect(unknown.__typename).toBe('NotFoundError');
  });

  it('deletes a session, then reports it gone', async () => {
    await append({ sessionKey: 'gw_delete', role: 'user', content: 'bye' });
    const r = (await t.gql(DELETE, { input: { sessionKey: 'gw_delete' } })).data?.deleteSession;
    expect(r).toEqual({
      __typename: 'DeleteSessionPayload',
      deletedSessionKey: 'gw_delete',
      deletedSessionId: Buffer.from('Session:gw_delete').toString('base64'),
    });
    expect((await t.gql('{ session(key: "gw_delete") { key } }')).data?.session).toBeNull();
    const again = (await t.gql(DELETE, { input: { sessionKey: 'gw_delete' } })).data?.deleteSession;
    expect(again).toMatchObject({ __typename: 'NotFoundError', code: 'NOT_FOUND' });
  });

  it('names a session that has no message yet, renames and clears', async () => {
    const created = (await t.gql(RENAME, { input: { sessionKey: 'gw_named', name: 'Fresh' } })).data
      ?.renameSession;
    expect(created.session).toEqual({ key: 'gw_named', name: 'Fresh', messageCount: 0, lastSeq: 0 });
    const cleared = (await t.gql(RENAME, { input: { sessionKey: 'gw_named', name: null } })).data
      ?.renameSession;
    expect(cleared.session.name).toBeNull();
    const bad = (await t.gql(RENAME, { input: { sessionKey: 'gw_named', name: 'x'.repeat(300) } })).data
      ?.renameSession;
    expect(bad.__typename).toBe('TooLargeError');
  });

  it('removes stale sessions by TTL', async () => {
    await append({ sessionKey: 'gw_stale', role: 'user', content: 'old' });
    await backdate(t, 'gw_stale', 48);
    const r = (await t.gql(CLEANUP, { input: { ttlHours: 24 } })).data?.cleanupStaleSessions;
    expect(r).toEqual({
      __typename: 'CleanupStaleSessionsPayload',
      deletedSessionKeys: ['gw_stale'],
      deletedCount: 1,
    });
    expect((await t.gql('{ session(key: "gw_stale") { key } }')).data?.session).toBeNull();
    for (const ttlHours of [0, -1, 8_766_000.5, 1e308]) {
      const refused = await t.gql(CLEANUP, { input: { ttlHours } });
      expect(refused.errors, String(ttlHours)).toBeUndefined();
      expect(refused.data?.cleanupStaleSessions).toMatchObject({
        __typename: 'InvalidInputError',
        code: 'INVALID',
        field: 'ttlHours',
      });
    }
    const longest = await t.gql(CLEANUP, { input: { ttlHours: 8_766_000 } });
    expect(longest.data?.cleanupStaleSessions).toMatchObject({ deletedCount: 0 });
  });

  it('never merges two keys that share a JSONL file name: refused on JSONL, kept apart on SQLite', async () => {
    await append({ sessionKey: 'slack/thread:1', role: 'user', content: 'first' });
    const r = await append({ sessionKey: 'slack_thread_1', role: 'user', content: 'second' });
    if (kind === 'jsonl') {
      expect(r).toMatchObject({
        __typename: 'KeyCollisionError',
        code: 'KEY_COLLISION',
        sessionKey: 'slack_thread_1',
        existingKey: 'slack/thread:1',
      });
    } else {
      expect(r).toMatchObject({ __typename: 'AppendMessagePayload' });
    }
    const read = async (key: string) =>
      (
        await t.gql(
          'query($k: String!) { session(key: $k) { messages(first: 5) { edges { node { content } } } } }',
          {
            k: key,
          },
        )
      ).data?.session?.messages.edges.map((e: { node: { content: string } }) => e.node.content);
    expect(await read('slack/thread:1')).toEqual(['first']);
    expect(await read('slack_thread_1')).toEqual(kind === 'jsonl' ? undefined : ['second']);
  });
});

/** Moves a session's last activity into the past, directly in storage. */
async function backdate(t: TestServer, key: string, hours: number): Promise<void> {
  const when = Date.now() - hours * 3_600_000;
  if (t.kind === 'jsonl') {
    utimesSync(join(t.dataDir, 'sessions', `${sanitizeKey(key)}.jsonl`), new Date(when), new Date(when));
    return;
  }
  const db = new Database(join(t.dataDir, 'sessions', 'sessions.db'));
  try {
    db.prepare('UPDATE session_metadata SET last_activity = ? WHERE session_key = ?').run(
      toTimestamp(when),
      key,
    );
  } finally {
    db.close();
  }
}
