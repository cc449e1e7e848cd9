import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countCalls } from '../helpers/api-counting-backend.js';
import { type Json, startTestServer, type TestServer } from '../helpers/server.js';

const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?\+00:00$/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(['sqlite', 'jsonl'] as const)('queries over HTTP: %s', (kind) => {
  let t: TestServer;
  const counter = { wrap: null as ReturnType<typeof countCalls> | null };

  beforeAll(async () => {
    t = await startTestServer(kind, {
      wrap: (real) => {
        counter.wrap = countCalls(real);
        return counter.wrap.backend;
      },
    });
    // four sessions, oldest first; `telegram_1_alice` holds 25 messages
    await t.backend.append(
      'telegram_1_alice',
      Array.from({ length: 25 }, (_, i) => ({
        role: i % 2 ? 'assistant' : 'user',
        content: `message ${i + 1}`,
      })),
    );
    for (const key of ['telegram_2_bob', 'discord_9_carol', 'slack_C1_dave']) {
      await sleep(15);
      await t.backend.append(key, [{ role: 'user', content: `hi from ${key} 日本😀` }]);
    }
    await t.backend.renameSession('slack_C1_dave', 'Dave');
  });
  afterAll(() => t?.close());

  it('describes the backend', async () => {
    const { data } =
      await t.gql(`{ backend { kind version capabilities { messageTimestamps rankedSearch stableSeq }
      limits { maxContentBytes maxBatchMessages maxKeyBytes maxPageSize } } }`);
    expect(data?.backend.kind).toBe(kind.toUpperCase());
    expect(typeof data?.backend.version).toBe('string');
    expect(data?.backend.capabilities.stableSeq).toBe(kind === 'sqlite');
    expect(data?.backend.limits.maxContentBytes).toBe(1_048_576);
  });

  it('reads one session with every field', async () => {
    const { data, errors } = await t.gql(
      `query ($key: String!) { session(key: $key) { id key name createdAt lastActivityAt messageCount lastSeq
        channel unreadableCount estimatedTokens lastMessage { seq role content session { key } } } }`,
      { key: 'slack_C1_dave' },
    );
    expect(errors).toBeUndefined();
    const s = data?.session;
    expect(s).toMatchObject({ key: 'slack_C1_dave', name: 'Dave', messageCount: 1, channel: 'slack' });
    expect(s.lastActivityAt).toMatch(TIMESTAMP);
    // 'hi from slack_C1_dave 日本😀': 24 code points (the emoji counts once) -> ceil(24 / 4)
    expect(s.estimatedTokens).toBe(Math.ceil([...'hi from slack_C1_dave 日本😀'].length / 4));
    expect(s.lastMessage).toMatchObject({ role: 'user', content: 'hi from slack_C1_dave 日本😀' });
    expect(s.lastMessage.seq).toBe(s.lastSeq);
    expect(s.lastMessage.session.key).toBe('slack_C1_dave');
    expect(kind === 'jsonl' ? s.unreadableCount : 0).toBe(0);
    const missing = await t.gql('{ session(key: "nobody") { key } }');
    expect(missing).toEqual({ data: { session: null } });
  });

  it('lists sessions, newest first, with filters and orders', async () => {
    const keys = async (args: string) =>
      (await t.gql(`{ sessions${args} { edges { node { key } } } }`)).data?.sessions.edges.map(
        (e: { node: { key: string } }) => e.node.key,
      );
    expect(await keys('')).toEqual([
      'slack_C1_dave',
      'discord_9_carol',
      'telegram_2_bob',
      'telegram_1_alice',
    ]);
    expect(await keys('(orderBy: KEY_ASC)')).toEqual([
      'discord_9_carol',
      'slack_C1_dave',
      'telegram_1_alice',
      'telegram_2_bob',
    ]);
    expect(await keys('(filter: { keyPrefix: "telegram_" })')).toEqual([
      'telegram_2_bob',
      'telegram_1_alice',
    ]);
    expect(await keys('(filter: { channel: "discord" })')).toEqual(['discord_9_carol']);
    const all = (
      await t.gql('{ sessions(orderBy: LAST_ACTIVITY_ASC) { edges { node { key lastActivityAt } } } }')
    ).data?.sessions.edges;
    // a bound written with `Z` and milliseconds is canonicalised (truncated: still <= the pivot)
    const pivot = `${all[2].node.lastActivityAt.slice(0, 23)}Z`;
    const since = await keys(`(orderBy: LAST_ACTIVITY_ASC, filter: { activeSince: "${pivot}" })`);
    expect(since).toEqual(all.slice(2).map((e: { node: { key: string } }) => e.node.key));
    const before = await keys(
      `(orderBy: LAST_ACTIVITY_ASC, filter: { activeBefore: "${all[2].node.lastActivityAt}" })`,
    );
    expect(before).toEqual(all.slice(0, 2).map((e: { node: { key: string } }) => e.node.key));
  });

  it('pages sessions forward and backward with opaque cursors, under a filter', async () => {
    const query = `query ($first: Int, $after: String, $last: Int, $before: String) {
      sessions(first: $first, after: $after, last: $last, before: $before, orderBy: KEY_DESC,
               filter: { keyPrefix: "t" }) {
        edges { cursor node { key } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`;
    const p1 = (await t.gql(query, { first: 1 })).data?.sessions;
    expect(p1.edges.map((e: Json) => e.node.key)).toEqual(['telegram_2_bob']);
    expect(p1.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
    expect(p1.pageInfo.endCursor).toBe(p1.edges[0].cursor);
    const p2 = (await t.gql(query, { first: 1, after: p1.pageInfo.endCursor })).data?.sessions;
    expect(p2.edges.map((e: Json) => e.node.key)).toEqual(['telegram_1_alice']);
    expect(p2.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
    const back = (await t.gql(query, { last: 1, before: p2.pageInfo.startCursor })).data?.sessions;
    expect(back.edges.map((e: Json) => e.node.key)).toEqual(['telegram_2_bob']);
    expect(back.pageInfo.hasPreviousPage).toBe(false);
    const bad = await t.gql(query, { first: 1, after: 'bm90IGEgY3Vyc29y' });
    expect(bad.errors?.[0]?.extensions).toMatchObject({ code: 'INVALID', field: 'after' });
  });

  it('pages messages forward and backward, oldest first', async () => {
    const query = `query ($first: Int, $after: String, $last: Int, $before: String) {
      session(key: "telegram_1_alice") { messages(first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { seq content } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }`;
    const contents = (page: Json) => page.edges.map((e: Json) => e.node.content);
    const seen: string[] = [];
    let after: string | undefined;
    for (let i = 0; i < 5; i++) {
      const page = (await t.gql(query, { first: 10, after })).data?.session.messages;
      seen.push(...contents(page));
      expect(page.pageInfo.hasPreviousPage).toBe(after !== undefined);
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `message ${i + 1}`));

    const last = (await t.gql(query, { last: 10 })).data?.session.messages;
    expect(contents(last)).toEqual(seen.slice(15));
    expect(last.pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: false });
    const earlier = (await t.gql(query, { last: 10, before: last.pageInfo.startCursor })).data?.session
      .messages;
    expect(contents(earlier)).toEqual(seen.slice(5, 15));
    const first = (await t.gql(query, { last: 10, before: earlier.pageInfo.startCursor })).data?.session
      .messages;
    expect(contents(first)).toEqual(seen.slice(0, 5));
    expect(first.pageInfo).toMatchObject({ hasPreviousPage: false, hasNextPage: true });
    // the default page is the first 50
    expect(contents((await t.gql(query)).data?.session.messages)).toEqual(seen);
    // cursors are opaque and distinct per message
    expect(new Set(last.edges.map((e: Json) => e.cursor)).size).toBe(10);
    expect(last.edges[0].cursor).not.toContain(String(last.edges[0].node.seq));
  });

  it('answers bad paging with typed GraphQL errors', async () => {
    const messages = (args: string) =>
      t.gql(`{ session(key: "telegram_1_alice") { messages${args} { edges { cursor } } } }`);
    const code = async (args: string) => (await messages(args)).errors?.[0]?.extensions?.code;
    expect(await code('(first: 1, last: 1)')).toBe('INVALID');
    expect(await code('(first: -1)')).toBe('INVALID');
    expect(await code('(last: 100000)')).toBe('TOO_LARGE');
    expect(await code('(after: "garbage!")')).toBe('INVALID');
    const tooLarge = await messages('(first: 5000)');
    expect(tooLarge.errors?.[0]?.extensions).toMatchObject({
      field: 'first',
      limit: 1_000,
      actual: 5_000,
      unit: 'items',
    });
    const badDate = await t.gql('{ sessions(filter: { activeSince: "yesterday" }) { edges { cursor } } }');
    expect(badDate.errors?.[0]?.message).toMatch(/RFC 3339/);
    expect(badDate.data ?? null).toBeNull();
  });

  it('refetches sessions and messages by global id', async () => {
    const { data } = await t.gql(`{ session(key: "telegram_2_bob") { id lastMessage { id seq content } } }`);
    const sessionId = data?.session.id;
    const messageId = data?.session.lastMessage.id;
    const nodes = await t.gql(
      `query ($s: ID!, $m: ID!) { a: node(id: $s) { __typename id ... on Session { key } }
        b: node(id: $m) { __typename id ... on Message { seq content sessionKey session { key } } } }`,
      { s: sessionId, m: messageId },
    );
    expect(nodes.errors).toBeUndefined();
    expect(nodes.data).toEqual({
      a: { __typename: 'Session', id: sessionId, key: 'telegram_2_bob' },
      b: {
        __typename: 'Message',
        id: messageId,
        seq: data?.session.lastMessage.seq,
        content: data?.session.lastMessage.content,
        sessionKey: 'telegram_2_bob',
        session: { key: 'telegram_2_bob' },
      },
    });
    const gone = Buffer.from('Message:999999:telegram_2_bob').toString('base64');
    expect((await t.gql(`{ node(id: "${gone}") { id } }`)).data?.node).toBeNull();
    expect(
      (await t.gql(`{ node(id: "${Buffer.from('Session:nobody').toString('base64')}") { id } }`)).data?.node,
    ).toBeNull();
    const b64 = (text: string) => Buffer.from(text).toString('base64');
    for (const id of [b64('Message:not-a-seq'), b64('Message:12'), b64('Foo:bar')]) {
      expect(await t.gql(`{ node(id: "${id}") { id } }`), id).toEqual({ data: { node: null } });
    }
    const garbage = await t.gql('{ node(id: "not base64!") { id } }');
    expect(garbage.errors?.[0]?.extensions).toMatchObject({ code: 'INVALID' });
  });

  it('loads lastMessage and estimatedTokens for a page of 100 sessions in a bounded number of calls', async () => {
    for (let i = 0; i < 100; i++) {
      await t.backend.append(`bulk_${String(i).padStart(3, '0')}`, [
        { role: 'user', content: `bulk message ${i}` },
      ]);
    }
    counter.wrap!.reset();
    const { data, errors } =
      await t.gql(`{ sessions(first: 100, filter: { keyPrefix: "bulk_" }) { edges { node {
      key estimatedTokens lastMessage { content session { key name } } } } } }`);
    expect(errors).toBeUndefined();
    expect(data?.sessions.edges).toHaveLength(100);
    expect(data?.sessions.edges[0].node.lastMessage.session.key).toBe(data?.sessions.edges[0].node.key);
    expect(Object.fromEntries(counter.wrap!.calls)).toEqual({
      sessions: 1,
      lastMessages: 1,
      characterCounts: 1,
    });
  });
});
