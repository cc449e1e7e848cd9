import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import {
  decodeMessageCursor,
  encodeMessageCursor,
  encodePosition,
  messageDigest,
  START_POSITION,
} from '../../src/events/message-cursor.js';
import { decodeSessionCursor, encodeSessionCursor, sessionListScope } from '../../src/schema/cursors.js';
import { renderSnippet } from '../../src/schema/snippet.js';
import { openWsClient, type WsClient } from '../helpers/live-client.js';
import { type Json, startTestServer, type TestServer } from '../helpers/server.js';

describe('cursors', () => {
  it('round-trip, and a message cursor changes when its message does', () => {
    const m = { seq: 42, role: 'user', content: 'hello' };
    const cursor = encodeMessageCursor(m);
    expect(decodeMessageCursor(cursor, 'after')).toEqual({ seq: 42, digest: messageDigest(m) });
    expect(encodeMessageCursor({ ...m, content: 'hello!' })).not.toBe(cursor);
    expect(encodeMessageCursor({ ...m, role: 'assistant' })).not.toBe(cursor);
    const s = { key: 'telegram_1:ü', lastActivityAt: '2026-03-24T21:51:41.123456789+00:00' };
    const scope = sessionListScope('LAST_ACTIVITY_DESC', {});
    expect(decodeSessionCursor(encodeSessionCursor(s, scope), 'after', scope)).toEqual(s);
    expect(
      decodeSessionCursor(encodeSessionCursor({ key: 'k', lastActivityAt: null }, scope), 'x', scope),
    ).toEqual({
      key: 'k',
      lastActivityAt: null,
    });
  });

  it('encode the start of a session and a position whose message is not known', () => {
    expect(decodeMessageCursor(encodePosition(START_POSITION), 'after')).toEqual({ seq: 0, digest: null });
    expect(decodeMessageCursor(encodePosition({ seq: 7, digest: null }), 'after')).toEqual({
      seq: 7,
      digest: null,
    });
  });

  it('refuse anything malformed with InvalidInputError naming the argument', () => {
    const scope = sessionListScope('KEY_ASC', { channel: 'slack' });
    const session = encodeSessionCursor({ key: 'k', lastActivityAt: null }, scope);
    const bad = [
      '',
      '!!!',
      'bTE6',
      `${encodeMessageCursor({ seq: 1, role: 'r', content: 'c' })}x`,
      session,
      'a'.repeat(9_000),
    ];
    for (const cursor of bad) {
      expect(() => decodeMessageCursor(cursor, 'before'), cursor).toThrow(InvalidInputError);
    }
    const message = encodeMessageCursor({ seq: 1, role: 'r', content: 'c' });
    for (const cursor of [
      '',
      message,
      Buffer.from('s2:{"a":1}').toString('base64url'),
      Buffer.from(`s2:["${scope}",1,"k"]`).toString('base64url'),
      // an unbound cursor of an earlier release, and one of another list
      Buffer.from('s1:[null,"k"]').toString('base64url'),
      encodeSessionCursor(
        { key: 'k', lastActivityAt: null },
        sessionListScope('KEY_DESC', { channel: 'slack' }),
      ),
      encodeSessionCursor({ key: 'k', lastActivityAt: null }, sessionListScope('KEY_ASC', {})),
    ]) {
      expect(() => decodeSessionCursor(cursor, 'after', scope), cursor).toThrow(InvalidInputError);
    }
    expect(decodeSessionCursor(session, 'after', scope)).toEqual({ key: 'k', lastActivityAt: null });
    try {
      decodeMessageCursor('nope', 'before');
    } catch (err) {
      expect((err as InvalidInputError).field).toBe('before');
    }
  });
});

describe('snippets', () => {
  it('escape the text, mark the matches and report their ranges', () => {
    const s = renderSnippet('a <b> & \u0002deploy\u0003 "x" \u0002déjà\u0003');
    expect(s.html).toBe('a &lt;b&gt; &amp; <mark>deploy</mark> &quot;x&quot; <mark>déjà</mark>');
    expect(s.text).toBe('a <b> & deploy "x" déjà');
    expect(s.matches.map(({ start, end }) => s.text.slice(start, end))).toEqual(['deploy', 'déjà']);
  });

  it('never emit unbalanced marks from stray markers', () => {
    expect(renderSnippet('x\u0003y\u0002z\u0002w').html).toBe('xy<mark>zw</mark>');
    expect(renderSnippet('😀\u0002é\u0003').matches).toEqual([{ start: 2, end: 3 }]);
  });
});

const PAGE = `query ($key: String!, $first: Int, $last: Int, $after: String, $before: String) {
  session(key: $key) { messages(first: $first, last: $last, after: $after, before: $before) {
    edges { cursor node { seq content } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }`;

const EVENTS = `subscription ($key: String!, $after: String) {
  sessionEvents(sessionKey: $key, after: $after) {
    __typename ... on LiveEvent { cursor } ... on MessageAppended { message { content } }
    ... on SessionReset { session { messageCount } } } }`;

/** The same cursor with its text changed: the envelope stays canonical base64url. */
const recode = (cursor: string, edit: (text: string) => string) =>
  Buffer.from(edit(Buffer.from(cursor, 'base64url').toString('utf8'))).toString('base64url');

describe.each(['sqlite', 'jsonl', 'postgres'] as const)('message cursors through the API: %s', (kind) => {
  let t: TestServer;
  let ws: WsClient | undefined;
  /** `telegram_a` and `telegram_b`: six messages each, b's text differing from a's. */
  let a: Json[];
  let b: Json[];

  beforeAll(async () => {
    t = await startTestServer(kind);
    for (let i = 1; i <= 6; i++) {
      await t.backend.append('telegram_a', [{ role: 'user', content: `a${i}` }]);
      await t.backend.append('telegram_b', [{ role: 'user', content: `b${i}` }]);
    }
    a = (await page('telegram_a', { first: 10 })).data.session.messages.edges;
    b = (await page('telegram_b', { first: 10 })).data.session.messages.edges;
  });
  afterAll(() => t?.close());
  afterEach(async () => {
    await ws?.close();
    ws = undefined;
  });

  async function page(key: string, args: Record<string, unknown>): Promise<Json> {
    return t.gql(PAGE, { key, ...args });
  }
  const contents = (r: Json) => r.data.session.messages.edges.map((e: Json) => e.node.content);
  async function expectRefused(key: string, args: Record<string, unknown>, field: 'after' | 'before') {
    const r = await page(key, args);
    expect(r.errors, JSON.stringify(args)).toHaveLength(1);
    expect(r.errors![0]!.extensions).toMatchObject({ code: 'INVALID', field });
    expect(r.data?.session ?? null).toBeNull();
  }

  it('page from their own session in both directions, the start of a session included', async () => {
    const forward = await page('telegram_a', { first: 2, after: a[1].cursor });
    expect(contents(forward)).toEqual(['a3', 'a4']);
    expect(forward.data.session.messages.pageInfo).toMatchObject({
      hasNextPage: true,
      hasPreviousPage: true,
    });
    const end = await page('telegram_a', { first: 5, after: a[3].cursor });
    expect(contents(end)).toEqual(['a5', 'a6']);
    expect(end.data.session.messages.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
    const backward = await page('telegram_a', { last: 2, before: a[4].cursor });
    expect(contents(backward)).toEqual(['a3', 'a4']);
    expect(backward.data.session.messages.pageInfo).toMatchObject({
      hasNextPage: true,
      hasPreviousPage: true,
    });
    const window = await page('telegram_a', { first: 10, after: a[0].cursor, before: a[3].cursor });
    expect(contents(window)).toEqual(['a2', 'a3']);
    const lastWindow = await page('telegram_a', { last: 10, after: a[0].cursor, before: a[3].cursor });
    expect(contents(lastWindow)).toEqual(['a2', 'a3']);
    expect(contents(await page('telegram_a', { first: 0, after: a[5].cursor }))).toEqual([]);
    const start = encodePosition(START_POSITION);
    expect(contents(await page('telegram_a', { first: 2, after: start }))).toEqual(['a1', 'a2']);
    expect(contents(await page('telegram_a', { last: 2, before: start }))).toEqual([]);
    // the page size cap itself: the bound is then checked by a read of its own
    expect(contents(await page('telegram_a', { first: 1_000, after: a[4].cursor }))).toEqual(['a6']);
  });

  it('refuse a cursor of another session, on every bound and page direction', async () => {
    await expectRefused('telegram_a', { first: 2, after: b[1].cursor }, 'after');
    await expectRefused('telegram_a', { last: 2, before: b[4].cursor }, 'before');
    await expectRefused('telegram_a', { first: 2, after: a[0].cursor, before: b[4].cursor }, 'before');
    await expectRefused('telegram_a', { last: 2, after: b[0].cursor, before: a[4].cursor }, 'after');
    await expectRefused('telegram_a', { first: 1_000, after: b[1].cursor }, 'after');
    await expectRefused('telegram_a', { last: 1_000, before: b[4].cursor }, 'before');
  });

  it('refuse a forged digest, an unknown one, and a seq no message of the session has', async () => {
    const forged = recode(a[1].cursor, (text) => text.replace(/:[0-9a-f]{16}$/, ':0000000000000000'));
    await expectRefused('telegram_a', { first: 2, after: forged }, 'after');
    await expectRefused('telegram_a', { last: 2, before: forged }, 'before');
    const unknown = recode(a[1].cursor, (text) => text.replace(/:[0-9a-f]{16}$/, ':-'));
    await expectRefused('telegram_a', { first: 2, after: unknown }, 'after');
    const beyond = recode(a[5].cursor, (text) => text.replace(/^m1:\d+:/, 'm1:999999:'));
    await expectRefused('telegram_a', { first: 2, after: beyond }, 'after');
    await expectRefused('telegram_a', { last: 2, before: beyond }, 'before');
  });

  it('refuse tampered or foreign-kind cursors as malformed', async () => {
    const session = (await t.gql('{ sessions(first: 1) { edges { cursor } } }')).data?.sessions.edges[0]
      .cursor;
    for (const bad of [`${a[1].cursor}x`, a[1].cursor.slice(0, -2), '!!', session, 'bTE6']) {
      await expectRefused('telegram_a', { first: 2, after: bad }, 'after');
      await expectRefused('telegram_a', { last: 2, before: bad }, 'before');
    }
  });

  it('refuse the cursor of a removed message, also once its seq holds another message', async () => {
    await t.backend.append('telegram_c', [{ role: 'user', content: 'c1' }]);
    await t.backend.append('telegram_c', [{ role: 'user', content: 'c2' }]);
    const [, c2] = (await page('telegram_c', { first: 5 })).data.session.messages.edges;
    await t.backend.removeLast('telegram_c');
    await expectRefused('telegram_c', { first: 5, after: c2.cursor }, 'after');
    await t.backend.append('telegram_c', [{ role: 'user', content: 'c2, edited' }]);
    await t.backend.append('telegram_c', [{ role: 'user', content: 'c3' }]);
    await expectRefused('telegram_c', { first: 5, after: c2.cursor }, 'after');
    await expectRefused('telegram_c', { last: 5, before: c2.cursor }, 'before');
    const fresh = (await page('telegram_c', { first: 5 })).data.session.messages.edges;
    expect(contents(await page('telegram_c', { first: 5, after: fresh[1].cursor }))).toEqual(['c3']);
  });

  it('bind session list cursors to the order and filter that issued them', async () => {
    const LIST = `query ($first: Int, $last: Int, $after: String, $before: String, $orderBy: SessionOrder,
      $filter: SessionFilter) { sessions(first: $first, last: $last, after: $after, before: $before,
      orderBy: $orderBy, filter: $filter) { edges { cursor node { key } } } }`;
    const list = (v: Record<string, unknown>): Promise<Json> => t.gql(LIST, v);
    const keys = (r: Json) => r.data.sessions.edges.map((e: Json) => e.node.key);
    const byKey = await list({ first: 1, orderBy: 'KEY_ASC', filter: { channel: 'telegram' } });
    const cursor = byKey.data.sessions.edges[0].cursor;
    expect(keys(byKey)).toEqual(['telegram_a']);
    const next = await list({ first: 1, after: cursor, orderBy: 'KEY_ASC', filter: { channel: 'telegram' } });
    expect(keys(next)).toEqual(['telegram_b']);
    const back = await list({
      last: 1,
      before: next.data.sessions.edges[0].cursor,
      orderBy: 'KEY_ASC',
      filter: { channel: 'telegram' },
    });
    expect(keys(back)).toEqual(['telegram_a']);
    for (const [v, field] of [
      [{ first: 1, after: cursor, orderBy: 'KEY_ASC' }, 'after'],
      [{ first: 1, after: cursor, orderBy: 'KEY_DESC', filter: { channel: 'telegram' } }, 'after'],
      [{ first: 1, after: cursor, filter: { channel: 'telegram' } }, 'after'],
      [{ first: 1, after: cursor, orderBy: 'KEY_ASC', filter: { keyPrefix: 'telegram_' } }, 'after'],
      [{ last: 1, before: cursor, orderBy: 'KEY_ASC', filter: { channel: 'slack' } }, 'before'],
      [{ first: 1, after: a[1].cursor, orderBy: 'KEY_ASC', filter: { channel: 'telegram' } }, 'after'],
    ] as const) {
      const r = await list(v);
      expect(r.errors?.[0]?.extensions, JSON.stringify(v)).toMatchObject({ code: 'INVALID', field });
    }
  });

  it('answer the same cursors on the live feed with a SessionReset, and a malformed one with INVALID', async () => {
    ws = openWsClient(t.url);
    const forged = recode(a[1].cursor, (text) => text.replace(/:[0-9a-f]{16}$/, ':0000000000000000'));
    for (const after of [b[1].cursor, forged]) {
      const sub = ws.subscribe(EVENTS, { key: 'telegram_a', after });
      const [event] = await sub.waitForEvents(1);
      expect(event).toMatchObject({ __typename: 'SessionReset', session: { messageCount: 6 } });
      sub.stop();
    }
    const own = ws.subscribe(EVENTS, { key: 'telegram_a', after: a[3].cursor });
    expect((await own.waitForEvents(2)).map((e) => e.message.content)).toEqual(['a5', 'a6']);
    own.stop();
    const bad = ws.subscribe(EVENTS, { key: 'telegram_a', after: `${a[1].cursor}x` });
    await bad.waitFor((s) => s.results.some((r) => r.errors));
    expect(bad.results[0]!.errors![0]!.extensions).toMatchObject({ code: 'INVALID', field: 'after' });
  });
});

describe('a bounded page at the cap of a backend whose cap is below the server', () => {
  it('checks the bound by a read of its own instead of failing the page', async () => {
    const t = await startTestServer('sqlite', { limits: { maxPageSize: 3 } });
    try {
      for (let i = 1; i <= 5; i++)
        await t.backend.append('telegram_cap', [{ role: 'user', content: `m${i}` }]);
      const list = `query ($first: Int, $last: Int, $after: String, $before: String) { session(key: "telegram_cap") {
        messages(first: $first, last: $last, after: $after, before: $before) { edges { cursor node { content } } } } }`;
      const all: Json = await t.gql(list, { first: 3 });
      const [first] = all.data.session.messages.edges;
      const after: Json = await t.gql(list, { first: 3, after: first.cursor });
      expect(after.errors).toBeUndefined();
      expect(after.data.session.messages.edges.map((e: Json) => e.node.content)).toEqual(['m2', 'm3', 'm4']);
      const tail: Json = await t.gql(list, { last: 3 });
      const before: Json = await t.gql(list, { last: 3, before: tail.data.session.messages.edges[2].cursor });
      expect(before.data.session.messages.edges.map((e: Json) => e.node.content)).toEqual(['m2', 'm3', 'm4']);
      const forged = `${first.cursor.slice(0, -4)}AAAA`;
      const refused: Json = await t.gql(list, { first: 3, after: forged });
      expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'INVALID', field: 'after' });
    } finally {
      await t.close();
    }
  });
});
