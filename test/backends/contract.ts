/**
 * The backend conformance suite: one set of behaviours, run unchanged against every backend
 * (contract.test.ts). Real storage in a fresh temp workspace per test; no mocks.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewMessage, SearchPage, SessionBackend, StoreLimits } from '../../src/backends/backend.js';
import { SNIPPET_CLOSE, SNIPPET_OPEN } from '../../src/backends/backend.js';
import { MAX_TTL_HOURS } from '../../src/backends/validate.js';
import {
  AppError,
  ConflictError,
  InvalidInputError,
  NotFoundError,
  TooLargeError,
} from '../../src/errors.js';

export interface BackendHarness {
  name: string;
  open(dataDir: string, limits?: Partial<StoreLimits>): Promise<SessionBackend>;
  /** Moves a session's last activity `hours` into the past, directly in storage. */
  backdate(dataDir: string, key: string, hours: number): Promise<void>;
  /**
   * Another writer of the same store, outside this backend instance: zeroclaw's own statements or
   * file operations from another process (SQLite, JSONL), or a second instance (PostgreSQL).
   */
  otherWriter(dataDir: string): Promise<OtherWriter>;
}

/** What another writer does to a session (keys are plain: their JSONL stem is the key). */
export interface OtherWriter {
  append(key: string, message: NewMessage): Promise<void>;
  removeLast(key: string): Promise<void>;
  deleteSession(key: string): Promise<void>;
  close(): Promise<void>;
}

const user = (content: string): NewMessage => ({ role: 'user', content });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function expectError<T extends AppError>(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => T,
): Promise<T> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, `expected ${type.name}`).toBeInstanceOf(type);
  return error as T;
}

export function runContractSuite(harness: BackendHarness): void {
  describe(`backend contract: ${harness.name}`, () => {
    let dir: string;
    let store: SessionBackend;
    const limits: Partial<StoreLimits> = { maxContentBytes: 4_096, maxBatchMessages: 10, maxPageSize: 100 };

    beforeEach(async () => {
      dir = mkdtempSync(join(tmpdir(), `sg-contract-${harness.name}-`));
      store = await harness.open(dir, limits);
    });
    afterEach(async () => {
      try {
        await store?.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    async function fill(key: string, n: number): Promise<number[]> {
      const seqs: number[] = [];
      for (let i = 1; i <= n; i++) {
        const { messages } = await store.append(key, [user(`message ${i}`)]);
        seqs.push(messages[0]!.seq);
      }
      return seqs;
    }

    describe('append', () => {
      it('stores one message and reports it with the session', async () => {
        const result = await store.append('telegram_1_alice', [{ role: 'user', content: 'hello' }]);
        expect(result.replayed).toBe(false);
        expect(result.messages).toHaveLength(1);
        const [m] = result.messages;
        expect(m).toMatchObject({ sessionKey: 'telegram_1_alice', role: 'user', content: 'hello' });
        expect(Number.isSafeInteger(m!.seq)).toBe(true);
        expect(result.session).toMatchObject({ key: 'telegram_1_alice', messageCount: 1, lastSeq: m!.seq });
        expect(await store.session('telegram_1_alice')).toMatchObject({ messageCount: 1, lastSeq: m!.seq });
      });

      it('gives increasing seqs and keeps order', async () => {
        const seqs = await fill('s', 5);
        expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
        expect(new Set(seqs).size).toBe(5);
        const page = await store.messages('s', { first: 10 });
        expect(page.items.map((m) => m.content)).toEqual([1, 2, 3, 4, 5].map((i) => `message ${i}`));
      });

      it('stores a batch atomically: all or none', async () => {
        await store.append('s', [user('first')]);
        await expectError(
          store.append('s', [user('ok'), { role: '', content: 'bad role' }]),
          InvalidInputError,
        );
        expect((await store.session('s'))?.messageCount).toBe(1);
        const { messages } = await store.append('s', [
          user('a'),
          { role: 'assistant', content: 'b' },
          user('c'),
        ]);
        expect(messages.map((m) => m.content)).toEqual(['a', 'b', 'c']);
        expect(messages[1]!.seq).toBeGreaterThan(messages[0]!.seq);
        expect((await store.session('s'))?.messageCount).toBe(4);
      });

      it('keeps every concurrent append, each with its own seq', async () => {
        const results = await Promise.all(
          Array.from({ length: 40 }, (_, i) => store.append('race', [user(`m${i}`)])),
        );
        const seqs = results.map((r) => r.messages[0]!.seq);
        expect(new Set(seqs).size).toBe(40);
        const page = await store.messages('race', { first: 100 });
        expect(page.items).toHaveLength(40);
        expect(page.items.map((m) => m.seq)).toEqual([...seqs].sort((a, b) => a - b));
        expect((await store.session('race'))?.messageCount).toBe(40);
      });

      it('round-trips unicode, control characters and large content exactly', async () => {
        const odd = [
          'emoji 😀👩‍👩‍👧 and CJK 日本語 and RTL שלום',
          'quotes " \' back\\slash / slash\nnew line\r\ttab \u0001 \u001f \u2028 \u2029 \u007f',
          'e\u0301 combining, Алиса',
          '{"role":"user","content":"json inside"}',
          ' leading and trailing spaces ',
          'x'.repeat(4_096),
        ];
        const { messages } = await store.append('unicode', odd.map(user));
        expect(messages.map((m) => m.content)).toEqual(odd);
        await store.close();
        store = await harness.open(dir, limits);
        const page = await store.messages('unicode', { first: 10 });
        expect(page.items.map((m) => m.content)).toEqual(odd);
      });
    });

    describe('idempotency by clientMessageId', () => {
      it('returns the first result on a retry and stores nothing twice', async () => {
        const first = await store.append('s', [user('once'), user('twice')], { clientMessageId: 'c-1' });
        const retry = await store.append('s', [user('once'), user('twice')], { clientMessageId: 'c-1' });
        expect(retry.replayed).toBe(true);
        expect(retry.messages.map((m) => [m.seq, m.content])).toEqual(
          first.messages.map((m) => [m.seq, m.content]),
        );
        expect((await store.session('s'))?.messageCount).toBe(2);
      });

      it('refuses the same id with other messages', async () => {
        await store.append('s', [user('one')], { clientMessageId: 'c-1' });
        await expectError(store.append('s', [user('other')], { clientMessageId: 'c-1' }), ConflictError);
        expect((await store.session('s'))?.messageCount).toBe(1);
      });

      it('scopes ids to their session', async () => {
        await store.append('a', [user('x')], { clientMessageId: 'same' });
        const b = await store.append('b', [user('x')], { clientMessageId: 'same' });
        expect(b.replayed).toBe(false);
      });

      it('forgets ids with the deleted session', async () => {
        await store.append('s', [user('x')], { clientMessageId: 'c' });
        await store.deleteSession('s');
        const again = await store.append('s', [user('x')], { clientMessageId: 'c' });
        expect(again.replayed).toBe(false);
        expect((await store.session('s'))?.messageCount).toBe(1);
      });
    });

    describe('idempotency after removal', () => {
      const contents = async () => (await store.messages('s', { first: 100 })).items.map((m) => m.content);

      it('refuses a retry whose message was removed since: stores nothing, answers no other seq', async () => {
        await store.append('s', [user('keep')]);
        await store.append('s', [user('gone')], { clientMessageId: 'c-r' });
        await store.removeLast('s');
        const refused = await expectError(
          store.append('s', [user('gone')], { clientMessageId: 'c-r' }),
          ConflictError,
        );
        expect(refused.message).toMatch(/removed since/);
        // JSONL gives the next message the removed seq: the retry must not be answered with it.
        await store.append('s', [user('next')]);
        await expectError(store.append('s', [user('gone')], { clientMessageId: 'c-r' }), ConflictError);
        expect(await contents()).toEqual(['keep', 'next']);
      });

      it('refuses a retry of a batch whose last message was removed since', async () => {
        await store.append('s', [user('x'), user('y')], { clientMessageId: 'c-b' });
        await store.removeLast('s');
        await expectError(
          store.append('s', [user('x'), user('y')], { clientMessageId: 'c-b' }),
          ConflictError,
        );
        expect(await contents()).toEqual(['x']);
      });

      it('still replays a retry when only a later message was removed', async () => {
        const first = await store.append('s', [user('a')], { clientMessageId: 'c-a' });
        await store.append('s', [user('b')]);
        await store.removeLast('s');
        const retry = await store.append('s', [user('a')], { clientMessageId: 'c-a' });
        expect(retry.replayed).toBe(true);
        expect(retry.messages.map((m) => m.seq)).toEqual(first.messages.map((m) => m.seq));
        expect(await contents()).toEqual(['a']);
      });
    });

    /**
     * A record answers a retry only while the messages it names are still stored as it stored them.
     * Another writer's delete (zeroclaw's delete_session or `/new`, another instance) takes the ids
     * with the session: the retry is a new request, stored in the session as it is now. A removal
     * from a session that still exists does not: the retry is refused, never stored twice.
     */
    describe('idempotency records against what is stored now', () => {
      let other: OtherWriter | null = null;
      afterEach(async () => {
        await other?.close();
        other = null;
      });

      async function expectStoredAnew(key: string, before: string[], batch: NewMessage[], id: string) {
        const retry = await store.append(key, batch, { clientMessageId: id });
        expect(retry.replayed).toBe(false);
        const page = await store.messages(key, { first: 100 });
        expect(page.items.map((m) => m.content)).toEqual([...before, ...batch.map((m) => m.content)]);
        expect(retry.messages.map((m) => m.seq)).toEqual(page.items.slice(before.length).map((m) => m.seq));
        expect(retry.session).toMatchObject({ key, messageCount: before.length + batch.length });
        // and from now on the new record answers: stored once more, never twice
        const again = await store.append(key, batch, { clientMessageId: id });
        expect(again).toMatchObject({ replayed: true, messages: retry.messages });
        expect((await store.session(key))?.messageCount).toBe(before.length + batch.length);
      }

      it('stores a retry anew after another writer deleted the session', async () => {
        other = await harness.otherWriter(dir);
        await store.append('s', [user('a'), user('b')], { clientMessageId: 'c' });
        await other.deleteSession('s');
        await expectStoredAnew('s', [], [user('a'), user('b')], 'c');
      });

      // JSONL has nothing but the file name to tell a recreated session from the old one: zeroclaw
      // deleting the file and writing it again before the retry counts as a removal (README).
      const recreatedIsNew = harness.name !== 'jsonl';

      it('stores a retry anew after another writer deleted the session and wrote it again', async () => {
        other = await harness.otherWriter(dir);
        await store.append('s', [user('first'), user('x')], { clientMessageId: 'c' });
        await other.deleteSession('s');
        await other.append('s', user('agent'));
        await other.append('s', user('agent 2'));
        if (recreatedIsNew) return expectStoredAnew('s', ['agent', 'agent 2'], [user('x')], 'c');
        await expectError(store.append('s', [user('x')], { clientMessageId: 'c' }), ConflictError);
        expect((await store.messages('s')).items.map((m) => m.content)).toEqual(['agent', 'agent 2']);
      });

      it('treats the same id with other messages as new once its session was deleted', async () => {
        other = await harness.otherWriter(dir);
        await store.append('s', [user('x')], { clientMessageId: 'c' });
        await other.deleteSession('s');
        if (!recreatedIsNew) return expectStoredAnew('s', [], [user('other')], 'c');
        await other.append('s', user('agent'));
        await expectStoredAnew('s', ['agent'], [user('other')], 'c');
      });

      it('refuses a retry after its message was removed, here or by another writer', async () => {
        other = await harness.otherWriter(dir);
        await store.append('s', [user('keep')]);
        await store.append('s', [user('x')], { clientMessageId: 'c1' });
        await store.removeLast('s');
        const refused = await expectError(
          store.append('s', [user('x')], { clientMessageId: 'c1' }),
          ConflictError,
        );
        expect(refused.message).toMatch(/removed since/);
        await store.append('s', [user('y')], { clientMessageId: 'c2' });
        await other.removeLast('s');
        await other.append('s', user('agent'));
        await expectError(store.append('s', [user('y')], { clientMessageId: 'c2' }), ConflictError);
        expect((await store.messages('s')).items.map((m) => m.content)).toEqual(['keep', 'agent']);
      });

      it('stores racing retries after a delete once, and answers the others from the new record', async () => {
        other = await harness.otherWriter(dir);
        await store.append('s', [user('x')], { clientMessageId: 'c' });
        await other.deleteSession('s');
        const retries = await Promise.all(
          Array.from({ length: 4 }, () => store.append('s', [user('x')], { clientMessageId: 'c' })),
        );
        expect(retries.filter((r) => !r.replayed)).toHaveLength(1);
        expect(new Set(retries.map((r) => r.messages[0]!.seq)).size).toBe(1);
        expect((await store.messages('s')).items.map((m) => m.content)).toEqual(['x']);
      });

      it('still answers from a record whose messages are all there', async () => {
        other = await harness.otherWriter(dir);
        const first = await store.append('s', [user('x')], { clientMessageId: 'c' });
        await other.append('s', user('agent'));
        await other.append('other', user('elsewhere'));
        await other.deleteSession('other');
        const retry = await store.append('s', [user('x')], { clientMessageId: 'c' });
        expect(retry).toMatchObject({ replayed: true, messages: first.messages });
        await expectError(store.append('s', [user('changed')], { clientMessageId: 'c' }), ConflictError);
        expect((await store.messages('s')).items.map((m) => m.content)).toEqual(['x', 'agent']);
      });
    });

    describe('expectedLastSeq guard', () => {
      it('null means the session must be empty', async () => {
        await store.append('s', [user('first')], { expectedLastSeq: null });
        const error = await expectError(
          store.append('s', [user('x')], { expectedLastSeq: null }),
          ConflictError,
        );
        expect(error.expectedLastSeq).toBeNull();
        expect(error.actualLastSeq).toBe((await store.session('s'))?.lastSeq);
      });

      it('accepts the current last seq and refuses a stale one', async () => {
        const [s1] = await fill('s', 1);
        const { messages } = await store.append('s', [user('second')], { expectedLastSeq: s1 });
        const error = await expectError(
          store.append('s', [user('late')], { expectedLastSeq: s1 }),
          ConflictError,
        );
        expect(error.actualLastSeq).toBe(messages[0]!.seq);
        expect((await store.session('s'))?.messageCount).toBe(2);
      });

      it('lets exactly one of two racing guarded appends win', async () => {
        const [s1] = await fill('s', 1);
        const outcomes = await Promise.allSettled([
          store.append('s', [user('A')], { expectedLastSeq: s1 }),
          store.append('s', [user('B')], { expectedLastSeq: s1 }),
        ]);
        expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
        const rejected = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
        expect(rejected.reason).toBeInstanceOf(ConflictError);
        expect((await store.session('s'))?.messageCount).toBe(2);
      });
    });

    describe('messages paging', () => {
      it('pages forward with hasNext/hasPrevious', async () => {
        const seqs = await fill('s', 25);
        const p1 = await store.messages('s', { first: 10 });
        expect(p1.items.map((m) => m.seq)).toEqual(seqs.slice(0, 10));
        expect(p1).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
        const p3 = await store.messages('s', { first: 10, afterSeq: seqs[19] });
        expect(p3.items.map((m) => m.seq)).toEqual(seqs.slice(20));
        expect(p3).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
      });

      it('pages backward, items still ascending', async () => {
        const seqs = await fill('s', 25);
        const last = await store.messages('s', { last: 10 });
        expect(last.items.map((m) => m.seq)).toEqual(seqs.slice(15));
        expect(last).toMatchObject({ hasPreviousPage: true, hasNextPage: false });
        const before = await store.messages('s', { last: 10, beforeSeq: seqs[5] });
        expect(before.items.map((m) => m.seq)).toEqual(seqs.slice(0, 5));
        expect(before).toMatchObject({ hasPreviousPage: false, hasNextPage: true });
      });

      it('honours both bounds and a zero-sized page', async () => {
        const seqs = await fill('s', 10);
        const window = await store.messages('s', { first: 100, afterSeq: seqs[1], beforeSeq: seqs[6] });
        expect(window.items.map((m) => m.seq)).toEqual(seqs.slice(2, 6));
        const none = await store.messages('s', { first: 0 });
        expect(none.items).toEqual([]);
        expect(none.hasNextPage).toBe(true);
      });

      it('returns an empty page for an unknown session', async () => {
        expect(await store.messages('nobody', { last: 5 })).toEqual({
          items: [],
          hasNextPage: false,
          hasPreviousPage: false,
        });
      });

      it('rejects bad page arguments with typed errors', async () => {
        await expectError(store.messages('s', { first: 1, last: 1 }), InvalidInputError);
        await expectError(store.messages('s', { first: -1 }), InvalidInputError);
        await expectError(store.messages('s', { first: 1.5 }), InvalidInputError);
        await expectError(store.messages('s', { afterSeq: -3 }), InvalidInputError);
        await expectError(store.messages('s', { last: 101 }), TooLargeError);
      });

      it('reads one message by seq, the last of many sessions and their sizes', async () => {
        const [a1] = await fill('a', 1);
        await store.append('b', [user('日本😀'), user('last of b')]);
        expect(await store.message('a', a1!)).toMatchObject({ seq: a1, content: 'message 1' });
        expect(await store.message('a', a1! + 1_000)).toBeNull();
        expect(await store.message('nobody', 1)).toBeNull();
        const lasts = await store.lastMessages(['a', 'b', 'nobody']);
        expect(lasts.get('a')?.content).toBe('message 1');
        expect(lasts.get('b')?.content).toBe('last of b');
        expect(lasts.has('nobody')).toBe(false);
        const chars = await store.characterCounts(['a', 'b']);
        expect(chars.get('a')).toBe('message 1'.length);
        expect(chars.get('b')).toBe(3 + 'last of b'.length);
      });
    });

    describe('sessions', () => {
      async function seed(): Promise<void> {
        for (const key of ['telegram_1_alice', 'telegram_2_bob', 'discord_9_carol', 'slack_C1_dave']) {
          await store.append(key, [user(`hi from ${key}`)]);
          await sleep(15);
        }
      }

      it('returns null for an unknown session', async () => {
        expect(await store.session('nobody')).toBeNull();
      });

      it('lists by last activity, newest first, by default', async () => {
        await seed();
        const page = await store.sessions({ first: 10 });
        expect(page.items.map((s) => s.key)).toEqual([
          'slack_C1_dave',
          'discord_9_carol',
          'telegram_2_bob',
          'telegram_1_alice',
        ]);
        expect(page.items[0]).toMatchObject({ messageCount: 1, name: null });
        expect(page.items[0]!.lastActivityAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$/);
      });

      it('filters by key prefix, channel and activity window', async () => {
        await seed();
        const byPrefix = await store.sessions({ filter: { keyPrefix: 'telegram_' } });
        expect(byPrefix.items.map((s) => s.key).sort()).toEqual(['telegram_1_alice', 'telegram_2_bob']);
        const byChannel = await store.sessions({ filter: { channel: 'discord' } });
        expect(byChannel.items.map((s) => s.key)).toEqual(['discord_9_carol']);
        const all = await store.sessions({ order: 'LAST_ACTIVITY_ASC' });
        const pivot = all.items[2]!.lastActivityAt!;
        const since = await store.sessions({ filter: { activeSince: pivot }, order: 'LAST_ACTIVITY_ASC' });
        expect(since.items.map((s) => s.key)).toEqual(all.items.slice(2).map((s) => s.key));
        const before = await store.sessions({ filter: { activeBefore: pivot }, order: 'LAST_ACTIVITY_ASC' });
        expect(before.items.map((s) => s.key)).toEqual(all.items.slice(0, 2).map((s) => s.key));
        const prefixOnly = await store.sessions({ filter: { keyPrefix: 'telegram_1%' } });
        expect(prefixOnly.items).toEqual([]);
      });

      it('takes activity bounds at both ends of the range and refuses any beyond it', async () => {
        await seed();
        const keys = async (filter: { activeSince?: string; activeBefore?: string }) =>
          (await store.sessions({ filter })).items.length;
        expect(await keys({ activeBefore: '9999-12-31T23:59:59.9999999Z' })).toBe(4);
        expect(await keys({ activeSince: '9999-12-31T23:59:59.9999999Z' })).toBe(0);
        expect(await keys({ activeSince: '0000-01-01T00:00:00Z' })).toBe(4);
        expect(await keys({ activeBefore: '0099-12-31T23:59:59Z' })).toBe(0);
        for (const activeSince of [
          '10000-01-01T00:00:00Z',
          '9999-12-31T23:00:00-01:00',
          '0000-01-01T00:00:00+00:01',
        ]) {
          const error = await expectError(store.sessions({ filter: { activeSince } }), InvalidInputError);
          expect(error.field).toBe('filter.activeSince');
        }
      });

      it('pages with cursors in every order, both directions', async () => {
        await seed();
        for (const order of ['LAST_ACTIVITY_DESC', 'LAST_ACTIVITY_ASC', 'KEY_ASC', 'KEY_DESC'] as const) {
          const all = (await store.sessions({ order, first: 10 })).items.map((s) => s.key);
          const p1 = await store.sessions({ order, first: 2 });
          expect(p1.hasNextPage).toBe(true);
          const lastOfP1 = p1.items[1]!;
          const p2 = await store.sessions({
            order,
            first: 2,
            after: { key: lastOfP1.key, lastActivityAt: lastOfP1.lastActivityAt },
          });
          expect([...p1.items, ...p2.items].map((s) => s.key)).toEqual(all);
          expect(p2).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
          const back = await store.sessions({
            order,
            last: 2,
            before: { key: p2.items[0]!.key, lastActivityAt: p2.items[0]!.lastActivityAt },
          });
          expect(back.items.map((s) => s.key)).toEqual(all.slice(0, 2));
          expect(back.hasPreviousPage).toBe(false);
        }
        const keyAsc = (await store.sessions({ order: 'KEY_ASC' })).items.map((s) => s.key);
        expect(keyAsc).toEqual([...keyAsc].sort());
      });
    });

    describe('removeLast', () => {
      it('removes and returns the last message', async () => {
        const seqs = await fill('s', 3);
        const { removed, session } = await store.removeLast('s');
        expect(removed).toMatchObject({ seq: seqs[2], content: 'message 3' });
        expect(session).toMatchObject({ messageCount: 2, lastSeq: seqs[1] });
        expect((await store.messages('s')).items.map((m) => m.content)).toEqual(['message 1', 'message 2']);
      });

      it('refuses when the guard does not match, removing nothing', async () => {
        const seqs = await fill('s', 2);
        const error = await expectError(store.removeLast('s', { expectedLastSeq: seqs[0] }), ConflictError);
        expect(error.actualLastSeq).toBe(seqs[1]);
        expect((await store.session('s'))?.messageCount).toBe(2);
        const ok = await store.removeLast('s', { expectedLastSeq: seqs[1] });
        expect(ok.removed?.seq).toBe(seqs[1]);
      });

      it('returns null on an empty session and NotFound on an unknown one', async () => {
        await fill('s', 1);
        await store.removeLast('s');
        expect((await store.removeLast('s')).removed).toBeNull();
        await expectError(store.removeLast('nobody'), NotFoundError);
      });
    });

    describe('compact, delete, rename, cleanup', () => {
      it('compacts a clean session without losing a message', async () => {
        await fill('s', 5);
        const { dropped, session } = await store.compact('s');
        expect(dropped).toBe(0);
        expect(session.messageCount).toBe(5);
        expect((await store.messages('s')).items).toHaveLength(5);
        await expectError(store.compact('nobody'), NotFoundError);
      });

      it('deletes a session and everything in it', async () => {
        await fill('s', 3);
        await fill('other', 1);
        await store.deleteSession('s');
        expect(await store.session('s')).toBeNull();
        expect((await store.messages('s')).items).toEqual([]);
        expect((await store.sessions()).items.map((x) => x.key)).toEqual(['other']);
        await expectError(store.deleteSession('s'), NotFoundError);
      });

      it('names a session that has no message yet, renames and clears', async () => {
        const created = await store.renameSession('gw_new', 'Fresh chat');
        expect(created).toMatchObject({ key: 'gw_new', name: 'Fresh chat', messageCount: 0, lastSeq: null });
        expect((await store.sessions()).items.map((s) => s.key)).toContain('gw_new');
        await store.append('gw_new', [user('now a message')]);
        expect(await store.session('gw_new')).toMatchObject({ name: 'Fresh chat', messageCount: 1 });
        expect((await store.renameSession('gw_new', 'Renamed')).name).toBe('Renamed');
        expect((await store.renameSession('gw_new', null)).name).toBeNull();
        expect((await store.renameSession('gw_new', '')).name).toBeNull();
        await expectError(store.renameSession('gw_new', 'bad\u0000name'), InvalidInputError);
      });

      it('removes only sessions idle longer than the TTL', async () => {
        await fill('old', 2);
        await fill('fresh', 1);
        await store.close();
        await harness.backdate(dir, 'old', 48);
        store = await harness.open(dir, limits);
        expect(await store.cleanupStale(24)).toEqual(['old']);
        expect(await store.session('old')).toBeNull();
        expect(await store.session('fresh')).not.toBeNull();
        expect(await store.cleanupStale(24)).toEqual([]);
        await expectError(store.cleanupStale(0), InvalidInputError);
        await expectError(store.cleanupStale(Number.NaN), InvalidInputError);
      });

      it('takes a TTL up to 1,000 years and refuses a longer one, naming ttlHours', async () => {
        await fill('kept', 1);
        for (const ttlHours of [1e308, MAX_TTL_HOURS * 1.000_001, 1e8, Number.POSITIVE_INFINITY, -1]) {
          const error = await expectError(store.cleanupStale(ttlHours), InvalidInputError);
          expect(error.field, String(ttlHours)).toBe('ttlHours');
        }
        expect(await store.cleanupStale(MAX_TTL_HOURS)).toEqual([]);
        expect(await store.session('kept')).not.toBeNull();
      });
    });

    describe('search', () => {
      async function corpus(): Promise<void> {
        await store.append('telegram_1_alice', [
          user('the deploy failed again, deploy deploy'),
          { role: 'assistant', content: 'I will look at the deploy logs' },
          user('unrelated chatter about lunch'),
        ]);
        await store.append('slack_C1_bob', [
          user('deployment succeeded after the fix'),
          { role: 'tool', content: '{"content":"exit code 0","tool_call_id":"call_1"}' },
        ]);
        await store.append('deploy_channel_x', [user('nothing about that word here')]);
      }

      it('finds words in content only, ranked, with marked snippets', async () => {
        await corpus();
        const page = await store.search({ query: 'deploy' });
        const contents = page.hits.map((h) => h.message.content);
        expect(contents).toEqual([
          'the deploy failed again, deploy deploy',
          'I will look at the deploy logs',
        ]);
        expect(page.hits[0]!.score).toBeGreaterThan(page.hits[1]!.score);
        expect(page.hits[0]!.snippet).toContain(`${SNIPPET_OPEN}deploy${SNIPPET_CLOSE}`);
        expect(page.hits[0]!.message.sessionKey).toBe('telegram_1_alice');
      });

      it('speaks the query language: phrase, prefix, exclusion, OR', async () => {
        await corpus();
        const keys = async (query: string) =>
          (await store.search({ query })).hits.map((h) => h.message.content).sort();
        expect(await keys('"deploy logs"')).toEqual(['I will look at the deploy logs']);
        expect(await keys('deploy*')).toHaveLength(3);
        expect(await keys('deploy* -failed')).toEqual([
          'I will look at the deploy logs',
          'deployment succeeded after the fix',
        ]);
        expect(await keys('lunch OR succeeded')).toEqual([
          'deployment succeeded after the fix',
          'unrelated chatter about lunch',
        ]);
        expect(await keys('deploy failed')).toEqual(['the deploy failed again, deploy deploy']);
        expect(await keys('DEPLOY')).toHaveLength(2);
      });

      it('filters by session, key prefix and role', async () => {
        await corpus();
        const contents = async (filter: object) =>
          (await store.search({ query: 'deploy*', filter })).hits.map((h) => h.message.content).sort();
        expect(await contents({ sessionKey: 'slack_C1_bob' })).toEqual([
          'deployment succeeded after the fix',
        ]);
        expect(await contents({ keyPrefix: 'telegram_' })).toHaveLength(2);
        expect(await contents({ role: 'assistant' })).toEqual(['I will look at the deploy logs']);
      });

      it('pages hits with cursors, in both orders, without repeats', async () => {
        for (let i = 0; i < 7; i++) await store.append(`s${i % 3}`, [user(`needle number ${i}`)]);
        for (const order of ['RELEVANCE', 'NEWEST'] as const) {
          const seen: string[] = [];
          let after: string | undefined;
          for (;;) {
            const page = await store.search({
              query: 'needle',
              order,
              first: 3,
              ...(after ? { after } : {}),
            });
            seen.push(...page.hits.map((h) => h.message.content));
            if (!page.hasNextPage) break;
            after = page.hits.at(-1)!.cursor;
          }
          expect(seen.sort()).toEqual(Array.from({ length: 7 }, (_, i) => `needle number ${i}`).sort());
        }
        const newest = await store.search({ query: 'needle', order: 'NEWEST', filter: { sessionKey: 's0' } });
        expect(newest.hits.map((h) => h.message.content)).toEqual([
          'needle number 6',
          'needle number 3',
          'needle number 0',
        ]);
        await expectError(store.search({ query: 'needle', after: 'not-a-cursor' }), InvalidInputError);
      });

      it('never fails on hostile query text', async () => {
        await corpus();
        const nasty = [
          '"',
          '""',
          '*',
          'NEAR(',
          'NEAR(a b)',
          'AND',
          'OR',
          'NOT',
          '-',
          ':',
          '^',
          '(',
          ')',
          '(deploy',
          'content:deploy',
          'session_key:telegram',
          '{col}',
          'a"b',
          '\\',
          "'",
          '; DROP TABLE sessions; --',
          '日本語',
          '😀',
          '\u0000',
          '',
          '   ',
          'deploy'.repeat(2_000),
          'x '.repeat(5_000),
        ];
        for (const query of nasty) {
          const outcome: SearchPage | unknown = await store.search({ query }).then(
            (page) => page,
            (e: unknown) => e,
          );
          if (outcome instanceof Error)
            expect(outcome, `query ${JSON.stringify(query.slice(0, 20))}`).toBeInstanceOf(AppError);
          else expect(Array.isArray((outcome as SearchPage).hits)).toBe(true);
        }
        expect((await store.search({ query: '' })).hits).toEqual([]);
        expect((await store.search({ query: 'telegram' })).hits).toEqual([]);
        await expectError(store.search({ query: '-deploy' }), InvalidInputError);
      });

      it('filters by message time only where the backend records it', async () => {
        await corpus();
        if (store.info().capabilities.messageTimestamps) {
          const past = '2000-01-01T00:00:00.000000000+00:00';
          const future = '2999-01-01T00:00:00.000000000+00:00';
          expect((await store.search({ query: 'deploy', filter: { since: past } })).hits).toHaveLength(2);
          expect((await store.search({ query: 'deploy', filter: { since: future } })).hits).toHaveLength(0);
          expect((await store.search({ query: 'deploy', filter: { until: past } })).hits).toHaveLength(0);
        } else {
          await expectError(
            store.search({ query: 'deploy', filter: { since: '2000-01-01T00:00:00+00:00' } }),
            InvalidInputError,
          );
        }
      });

      it('takes message-time bounds at both ends of the range and refuses any beyond it', async () => {
        await corpus();
        const latest = '9999-12-31T23:59:59.9999999Z';
        const earliest = '0000-01-01T00:00:00Z';
        if (store.info().capabilities.messageTimestamps) {
          const hits = async (filter: { since?: string; until?: string }) =>
            (await store.search({ query: 'deploy', filter })).hits.length;
          expect(await hits({ until: latest })).toBe(2);
          expect(await hits({ since: latest })).toBe(0);
          expect(await hits({ since: earliest })).toBe(2);
          expect(await hits({ until: earliest })).toBe(0);
        }
        for (const [field, value] of [
          ['since', '9999-12-31T23:30:00-01:00'],
          ['until', '0000-01-01T00:30:00+01:00'],
        ] as const) {
          const error = await expectError(
            store.search({ query: 'deploy', filter: { [field]: value } }),
            InvalidInputError,
          );
          if (store.info().capabilities.messageTimestamps) expect(error.message).toMatch(/0000 to 9999/);
        }
      });
    });

    describe('bad input: a typed error and nothing stored', () => {
      const cases: Array<[string, string, NewMessage[], abstract new (...args: never[]) => AppError]> = [
        ['empty key', '', [user('x')], InvalidInputError],
        ['key over 1,024 bytes', 'k'.repeat(1_025), [user('x')], TooLargeError],
        ['NUL in key', 'a\u0000b', [user('x')], InvalidInputError],
        ['lone surrogate in key', 'a\ud800', [user('x')], InvalidInputError],
        ['lone surrogate in content', 'ok', [user('bad \udc00 text')], InvalidInputError],
        ['NUL in content', 'ok', [user('bad \u0000 text')], InvalidInputError],
        ['oversize content', 'ok', [user('x'.repeat(4_097))], TooLargeError],
        ['oversize multibyte content', 'ok', [user('é'.repeat(2_049))], TooLargeError],
        ['empty role', 'ok', [{ role: '', content: 'x' }], InvalidInputError],
        ['empty batch', 'ok', [], InvalidInputError],
        ['batch over the cap', 'ok', Array.from({ length: 11 }, (_, i) => user(`${i}`)), TooLargeError],
      ];
      for (const [label, key, messages, type] of cases) {
        it(label, async () => {
          await expectError(store.append(key, messages), type);
          expect(await store.session(key)).toBeNull();
          expect((await store.sessions()).items).toEqual([]);
        });
      }

      it('rejects a bad clientMessageId and a bad guard', async () => {
        await expectError(store.append('ok', [user('x')], { clientMessageId: '' }), InvalidInputError);
        await expectError(store.append('ok', [user('x')], { expectedLastSeq: -1 }), InvalidInputError);
        expect(await store.session('ok')).toBeNull();
      });
    });

    describe('imports: original times', () => {
      const first = '2024-05-01T12:00:00.123456Z';
      const second = '2024-05-01T12:00:01.5+00:00';

      it('stores a given createdAt where messages have times, and ignores it where not', async () => {
        const { messages } = await store.append('s', [
          { role: 'user', content: 'old', createdAt: first },
          { role: 'assistant', content: 'older reply', createdAt: second },
          user('now'),
        ]);
        const stored = (await store.messages('s')).items;
        if (store.info().capabilities.messageTimestamps) {
          const expected = ['2024-05-01T12:00:00.123456000+00:00', '2024-05-01T12:00:01.500000000+00:00'];
          expect(messages.slice(0, 2).map((m) => m.createdAt)).toEqual(expected);
          expect(stored.slice(0, 2).map((m) => m.createdAt)).toEqual(expected);
          expect(stored[2]!.createdAt! > expected[1]!).toBe(true);
        } else {
          expect(stored.map((m) => m.createdAt)).toEqual([null, null, null]);
        }
        expect(stored.map((m) => m.content)).toEqual(['old', 'older reply', 'now']);
      });

      it('keeps years 0-99 and fractions before 1970 as given, in messages and session records', async () => {
        const given = [
          ['0050-06-01T00:00:00Z', '0050-06-01T00:00:00.000000000+00:00'],
          ['0000-01-01T00:00:00.000001Z', '0000-01-01T00:00:00.000001000+00:00'],
          ['0099-12-31T23:59:59.5-01:00', '0100-01-01T00:59:59.500000000+00:00'],
          ['1969-12-31T23:59:59.25Z', '1969-12-31T23:59:59.250000000+00:00'],
          ['9999-12-31T23:59:59.999999Z', '9999-12-31T23:59:59.999999000+00:00'],
        ] as const;
        await store.append(
          'ancient',
          given.map(([createdAt], i) => ({ role: 'user', content: `m${i}`, createdAt })),
        );
        const stored = (await store.messages('ancient')).items.map((m) => m.createdAt);
        if (store.info().capabilities.messageTimestamps) {
          expect(stored).toEqual(given.map(([, canonical]) => canonical));
          const since = await store.search({ query: 'm0', filter: { since: '0050-06-01T00:00:00Z' } });
          expect(since.hits.map((h) => h.message.content)).toEqual(['m0']);
          const until = await store.search({ query: 'm0', filter: { until: '0050-06-01T00:00:00Z' } });
          expect(until.hits).toEqual([]);
        } else {
          expect(stored).toEqual(given.map(() => null));
        }
        if (!store.restoreSession) return;
        const restored = await store.restoreSession('ancient', {
          name: null,
          createdAt: '0000-01-01T00:00:00Z',
          lastActivityAt: '0050-06-01T12:00:00.123456+00:00',
        });
        expect(restored).toMatchObject({
          createdAt: '0000-01-01T00:00:00.000000000+00:00',
          lastActivityAt: '0050-06-01T12:00:00.123456000+00:00',
        });
        expect(await store.session('ancient')).toMatchObject({
          createdAt: '0000-01-01T00:00:00.000000000+00:00',
          lastActivityAt: '0050-06-01T12:00:00.123456000+00:00',
        });
        const window = {
          activeSince: '0050-06-01T12:00:00.123456Z',
          activeBefore: '0050-06-01T12:00:00.1234561Z',
        };
        expect((await store.sessions({ filter: window })).items.map((s) => s.key)).toEqual(['ancient']);
        expect(await store.cleanupStale(MAX_TTL_HOURS)).toEqual(['ancient']);
      });

      it('refuses a createdAt outside UTC years 0000 to 9999, naming it and storing nothing', async () => {
        for (const createdAt of [
          '0000-01-01T00:59:59+01:00',
          '9999-12-31T23:00:00-01:00',
          '10000-01-01T00:00:00Z',
        ]) {
          const error = await expectError(
            store.append('s', [user('fine'), { role: 'user', content: 'x', createdAt }]),
            InvalidInputError,
          );
          expect(error.field, createdAt).toBe('messages[1].createdAt');
        }
        if (store.restoreSession) {
          await expectError(
            store.restoreSession('s', {
              name: null,
              createdAt: null,
              lastActivityAt: '0000-01-01T00:00:00+00:01',
            }),
            InvalidInputError,
          );
        }
        expect(await store.session('s')).toBeNull();
      });

      it('rejects a createdAt that is not RFC 3339, storing nothing', async () => {
        for (const createdAt of ['yesterday', '2024-05-01 12:00:00', '2024-13-01T00:00:00Z']) {
          await expectError(
            store.append('s', [{ role: 'user', content: 'x', createdAt }]),
            InvalidInputError,
          );
        }
        expect(await store.session('s')).toBeNull();
      });

      it('restores a session record, where the backend stores session times', async () => {
        if (!store.restoreSession) {
          expect(store.info().kind).toBe('jsonl');
          return;
        }
        await store.append('busy', [user('recent')]);
        const empty = await store.restoreSession('empty', {
          name: 'Empty',
          createdAt: first,
          lastActivityAt: second,
        });
        expect(empty).toMatchObject({
          key: 'empty',
          name: 'Empty',
          messageCount: 0,
          lastSeq: null,
          createdAt: '2024-05-01T12:00:00.123456000+00:00',
          lastActivityAt: '2024-05-01T12:00:01.500000000+00:00',
        });
        const restored = await store.restoreSession('busy', {
          name: null,
          createdAt: first,
          lastActivityAt: first,
        });
        expect(restored).toMatchObject({
          messageCount: 1,
          lastActivityAt: '2024-05-01T12:00:00.123456000+00:00',
        });
        expect((await store.sessions()).items.map((s) => s.key)).toEqual(['empty', 'busy']);
        const kept = await store.restoreSession('busy', {
          name: 'Named',
          createdAt: null,
          lastActivityAt: null,
        });
        expect(kept).toMatchObject({ name: 'Named', lastActivityAt: restored.lastActivityAt });
        await expectError(
          store.restoreSession('busy', { name: null, createdAt: 'soon', lastActivityAt: null }),
          InvalidInputError,
        );
      });
    });

    it('reports what it is', () => {
      const info = store.info();
      expect(info.kind).toBe(harness.name);
      expect(typeof info.version).toBe('string');
      expect(typeof info.capabilities.rankedSearch).toBe('boolean');
    });

    it('keeps everything across close and reopen', async () => {
      const seqs = await fill('s', 3);
      await store.renameSession('s', 'kept');
      await store.close();
      store = await harness.open(dir, limits);
      expect(await store.session('s')).toMatchObject({ name: 'kept', messageCount: 3, lastSeq: seqs[2] });
      expect((await store.messages('s')).items.map((m) => m.seq)).toEqual(seqs);
    });
  });
}
