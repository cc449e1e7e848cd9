/**
 * A retried `appendMessages` after another writer deleted its session, through the GraphQL API:
 * zeroclaw's own delete_session and cleanup_stale (its SQL on its own connection, in another
 * process for delete), zeroclaw's `/new` on JSONL (the file unlinked, then written again), and a
 * second PostgreSQL instance. The idempotency record names messages that are gone, so the retry is
 * a new request: stored once in the session as it is now, never answered with a session that does
 * not exist.
 */

import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { SessionBackend } from '../../src/backends/backend.js';
import { openPostgresBackend } from '../../src/backends/postgres/postgres-backend.js';
import { TEST_DATABASE_URL, uniqueSchema } from '../helpers/postgres-database.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { chronoTimestamp, zeroclawPragmas } from '../helpers/sqlite-zeroclaw.js';
import { spawnZeroclawWriter, type ZeroclawWriter } from '../helpers/zeroclaw-writer.js';

const APPEND = `mutation ($input: AppendMessagesInput!) { appendMessages(input: $input) { __typename
  ... on Error { code message }
  ... on AppendMessagesPayload { replayed appendedMessages { seq content } session { key messageCount lastSeq } } } }`;

const MESSAGES = `query ($key: String!) { session(key: $key) { messages(first: 50) { edges { node { seq content } } } } }`;

describe.each(['sqlite', 'jsonl', 'postgres'] as const)(
  'a retry after another writer deleted the session: %s',
  (kind) => {
    let t: TestServer | null = null;
    let writer: ZeroclawWriter | null = null;
    let second: SessionBackend | null = null;

    afterEach(async () => {
      await writer?.close();
      await second?.close();
      await t?.close();
      t = null;
      writer = null;
      second = null;
    });

    const append = async (key: string, contents: string[], clientMessageId: string) => {
      const { data, errors } = await t!.gql(APPEND, {
        input: {
          sessionKey: key,
          clientMessageId,
          messages: contents.map((content) => ({ role: 'user', content })),
        },
      });
      expect(errors).toBeUndefined();
      return data?.appendMessages;
    };
    const contents = async (key: string) =>
      (await t!.gql(MESSAGES, { key })).data?.session?.messages.edges.map(
        (e: { node: { content: string } }) => e.node.content,
      );

    /** Deletes the session the way the other writer does, then has it write `agent` messages to it. */
    async function deleteElsewhere(key: string, agent: string[]): Promise<void> {
      if (kind === 'postgres') {
        second ??= await openPostgresBackend({ databaseUrl: TEST_DATABASE_URL, schema: schema! });
        await second.deleteSession(key);
        for (const content of agent) await second.append(key, [{ role: 'user', content }]);
        return;
      }
      writer ??= await spawnZeroclawWriter(kind, t!.dataDir);
      await writer.run({ op: 'delete', key });
      for (const content of agent) await writer.run({ op: 'append', key, role: 'user', content });
    }

    let schema: string | null = null;
    const start = async () => {
      schema = kind === 'postgres' ? uniqueSchema('sg_retry') : null;
      t = await startTestServer(kind, schema ? { databaseSchema: schema } : {});
    };

    it('stores the retry anew, once, instead of answering from a stale record', async () => {
      await start();
      const first = await append('gw_retry', ['one', 'two'], 'c-1');
      expect(first).toMatchObject({ __typename: 'AppendMessagesPayload', replayed: false });
      await deleteElsewhere('gw_retry', []);
      const retry = await append('gw_retry', ['one', 'two'], 'c-1');
      expect(retry).toMatchObject({
        __typename: 'AppendMessagesPayload',
        replayed: false,
        session: { key: 'gw_retry', messageCount: 2 },
      });
      expect(retry.session.lastSeq).toBe(retry.appendedMessages[1].seq);
      expect(await contents('gw_retry')).toEqual(['one', 'two']);
      const again = await append('gw_retry', ['one', 'two'], 'c-1');
      expect(again).toMatchObject({ replayed: true, appendedMessages: retry.appendedMessages });
      expect(await contents('gw_retry')).toEqual(['one', 'two']);
    });

    it('stores the retry after what the other writer wrote to the new session', async () => {
      await start();
      await append('gw_recreated', ['first', 'mine'], 'c-1');
      await deleteElsewhere('gw_recreated', ['agent says hi']);
      const retry = await append('gw_recreated', ['first', 'mine'], 'c-1');
      if (kind === 'jsonl') {
        // a file name is all JSONL has: a deleted and recreated file is the same session, and the
        // retry of a message no longer in it is refused rather than stored twice (README)
        expect(retry).toMatchObject({ __typename: 'ConflictError' });
        expect(await contents('gw_recreated')).toEqual(['agent says hi']);
        return;
      }
      expect(retry).toMatchObject({ replayed: false, session: { messageCount: 3 } });
      expect(await contents('gw_recreated')).toEqual(['agent says hi', 'first', 'mine']);
      // the same id with other messages is now simply new too, not a conflict with the void record
      await deleteElsewhere('gw_recreated', []);
      const other = await append('gw_recreated', ['something else'], 'c-1');
      expect(other).toMatchObject({ __typename: 'AppendMessagesPayload', replayed: false });
      expect(await contents('gw_recreated')).toEqual(['something else']);
    });

    it.runIf(kind === 'sqlite')("stores the retry anew after zeroclaw's cleanup_stale", async () => {
      await start();
      await append('gw_idle', ['idle'], 'c-1');
      await append('gw_idle', ['idle too'], 'c-3');
      await append('gw_busy', ['busy'], 'c-2');
      // zeroclaw's cleanup_stale, verbatim, on its own connection, after gw_idle went idle for two days
      const db = new Database(join(t!.dataDir, 'sessions', 'sessions.db'));
      try {
        zeroclawPragmas(db);
        db.prepare('UPDATE session_metadata SET last_activity = ? WHERE session_key = ?').run(
          chronoTimestamp(Date.now() - 48 * 3_600_000),
          'gw_idle',
        );
        const cutoff = chronoTimestamp(Date.now() - 24 * 3_600_000);
        const stale = db
          .prepare('SELECT session_key FROM session_metadata WHERE last_activity < ?1')
          .pluck()
          .all({ 1: cutoff }) as string[];
        expect(stale).toEqual(['gw_idle']);
        for (const key of stale) {
          db.prepare('DELETE FROM sessions WHERE session_key = ?1').run({ 1: key });
          db.prepare('DELETE FROM session_metadata WHERE session_key = ?1').run({ 1: key });
        }
      } finally {
        db.close();
      }
      const retry = await append('gw_idle', ['idle'], 'c-1');
      expect(retry).toMatchObject({ replayed: false, session: { key: 'gw_idle', messageCount: 1 } });
      expect(await contents('gw_idle')).toEqual(['idle']);
      // the new session's first write dropped every record the deleted one left behind
      const records = new Database(join(t!.dataDir, 'sessions', 'sessions.db'), { readonly: true });
      try {
        expect(
          records
            .prepare(
              'SELECT client_message_id, seqs FROM sessiongraph_idempotency ORDER BY client_message_id',
            )
            .all(),
        ).toEqual([
          { client_message_id: 'c-1', seqs: JSON.stringify([retry.appendedMessages[0].seq]) },
          { client_message_id: 'c-2', seqs: expect.any(String) },
        ]);
      } finally {
        records.close();
      }
      // the session that is still there still answers from its record
      expect(await append('gw_busy', ['busy'], 'c-2')).toMatchObject({ replayed: true });
      expect(await contents('gw_busy')).toEqual(['busy']);
    });
  },
);
