/**
 * Subscriptions over the real transports: a server on port 0, graphql-ws's client over a real
 * socket, and server-sent events over fetch.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { decodeMessageCursor } from '../../src/events/message-cursor.js';
import { type LiveSubscription, openWsClient, subscribeSse, type WsClient } from '../helpers/live-client.js';
import { prng } from '../helpers/prng.js';
import { type Json, startTestServer, type TestServer } from '../helpers/server.js';

const SESSION_EVENTS = `subscription ($key: String!, $after: String, $fromStart: Boolean) {
  sessionEvents(sessionKey: $key, after: $after, fromStart: $fromStart) {
    __typename
    ... on LiveEvent { sessionKey cursor }
    ... on MessageAppended { message { seq role content } }
    ... on MessageRemoved { seq session { messageCount lastSeq } }
    ... on SessionCompacted { droppedCount session { messageCount } }
    ... on SessionRenamed { name session { name } }
    ... on SessionReset { session { messageCount lastSeq } }
  } }`;

const SESSION_ACTIVITY = `subscription ($filter: SessionActivityFilter) {
  sessionActivity(filter: $filter) { kind sessionKey session { key name messageCount lastActivityAt } } }`;

const APPEND = `mutation ($key: String!, $content: String!) {
  appendMessage(input: { sessionKey: $key, role: "user", content: $content }) {
    ... on AppendMessagePayload { messageEdge { cursor } appendedMessage { seq } } ... on Error { code } } }`;

const typenames = (events: Json[]) => events.map((e) => e.__typename);

/** A subscription without a cursor is live once it saw something: poke until it does. */
async function untilLive(sub: LiveSubscription, poke: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 100 && sub.events.length === 0; i++) {
    await poke();
    await sub.waitFor((s) => s.events.length > 0, 50).catch(() => undefined);
  }
  expect(sub.events.length).toBeGreaterThan(0);
}

describe.each(['sqlite', 'jsonl'] as const)('live events over graphql-ws: %s', (kind) => {
  let t: TestServer | undefined;
  let ws: WsClient | undefined;
  afterEach(async () => {
    await ws?.close();
    await t?.close();
    ws = undefined;
    t = undefined;
  });

  const mutate = async (query: string, variables?: Record<string, unknown>) => {
    const r = await t!.gql(query, variables);
    expect(r.errors).toBeUndefined();
    return r.data!;
  };

  it('publishes an event for every mutation, to the session feed and the session list', async () => {
    t = await startTestServer(kind);
    ws = openWsClient(t.url);
    // from the start of the session: nothing can slip in before the subscription is set up
    const events = ws.subscribe(SESSION_EVENTS, { key: 'gw_all', fromStart: true });
    const elsewhere = ws.subscribe(SESSION_ACTIVITY, { filter: { keyPrefix: 'telegram_' } });
    const activity = ws.subscribe(SESSION_ACTIVITY, { filter: { channel: 'gw' } });
    await untilLive(activity, () => mutate(APPEND, { key: 'gw_warmup', content: 'hello?' }));
    activity.events.length = 0;
    await mutate(APPEND, { key: 'gw_all', content: 'one' });
    await events.waitForEvents(1);

    await mutate(`mutation { appendMessages(input: { sessionKey: "gw_all", messages: [
      { role: "assistant", content: "two" }, { role: "user", content: "three" }] }) { __typename } }`);
    await mutate('mutation { removeLastMessage(input: { sessionKey: "gw_all" }) { __typename } }');
    await mutate('mutation { compactSession(input: { sessionKey: "gw_all" }) { __typename } }');
    await mutate('mutation { renameSession(input: { sessionKey: "gw_all", name: "All" }) { __typename } }');
    await mutate('mutation { deleteSession(input: { sessionKey: "gw_all" }) { __typename } }');
    await mutate(APPEND, { key: 'gw_all', content: 'again' });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await mutate('mutation { cleanupStaleSessions(input: { ttlHours: 0.000001 }) { __typename } }');

    const got = await events.waitForEvents(9);
    expect(typenames(got)).toEqual([
      'MessageAppended',
      'MessageAppended',
      'MessageAppended',
      'MessageRemoved',
      'SessionCompacted',
      'SessionRenamed',
      'SessionDeleted',
      'MessageAppended',
      'SessionDeleted',
    ]);
    expect(got.slice(0, 3).map((e) => e.message.content)).toEqual(['one', 'two', 'three']);
    expect(got[3]).toMatchObject({ seq: got[2].message.seq, session: { messageCount: 2 } });
    expect(got[3].session.lastSeq).toBe(got[1].message.seq);
    // a removal steps the cursor back to the message that is now last
    expect(got[3].cursor).toBe(got[1].cursor);
    expect(got[5]).toMatchObject({ name: 'All', session: { name: 'All' } });
    expect(got.every((e) => e.sessionKey === 'gw_all' && typeof e.cursor === 'string')).toBe(true);

    await activity.waitFor((s) => s.events.filter((e: Json) => e.kind === 'DELETED').length === 3);
    // the cleanup removed the warm-up session too, and the filter let it through: same channel
    expect(activity.events.some((e: Json) => e.sessionKey === 'gw_warmup' && e.kind === 'DELETED')).toBe(
      true,
    );
    const mine = activity.events.filter((e: Json) => e.sessionKey === 'gw_all');
    const kinds = mine.map((e: Json) => e.kind);
    // a slow reader may get consecutive snapshots of one session merged
    const merged = kinds.filter((k: string, i: number) => !(k === 'UPDATED' && kinds[i - 1] === 'UPDATED'));
    expect(merged).toEqual(['CREATED', 'UPDATED', 'RENAMED', 'DELETED', 'CREATED', 'DELETED']);
    expect(mine[0].session).toMatchObject({ key: 'gw_all', messageCount: 1 });
    expect(mine.find((e: Json) => e.kind === 'RENAMED').session).toMatchObject({
      name: 'All',
      messageCount: 2,
    });
    expect(elsewhere.events).toEqual([]);
  });

  it('resumes from any event cursor with no gap and no duplicate, and resets on a rewritten cursor', async () => {
    t = await startTestServer(kind);
    ws = openWsClient(t.url);
    const first = await mutate(APPEND, { key: 'gw_resume', content: 'one' });
    for (const content of ['two', 'three']) await mutate(APPEND, { key: 'gw_resume', content });
    const replay = ws.subscribe(SESSION_EVENTS, {
      key: 'gw_resume',
      after: first.appendMessage.messageEdge.cursor,
    });
    const replayed = await replay.waitForEvents(2);
    expect(replayed.map((e) => e.message.content)).toEqual(['two', 'three']);
    replay.stop();
    await mutate(APPEND, { key: 'gw_resume', content: 'four' });
    const resumed = ws.subscribe(SESSION_EVENTS, { key: 'gw_resume', after: replayed[1].cursor });
    await resumed.waitForEvents(1);
    await mutate(APPEND, { key: 'gw_resume', content: 'five' });
    const got = await resumed.waitForEvents(2);
    expect(got.map((e) => e.message.content)).toEqual(['four', 'five']);

    // the cursor of "five" no longer names a stored message once "five" is removed (and, in JSONL,
    // its seq is taken by another message)
    await mutate('mutation { removeLastMessage(input: { sessionKey: "gw_resume" }) { __typename } }');
    await mutate(APPEND, { key: 'gw_resume', content: 'five, edited' });
    const reset = ws.subscribe(SESSION_EVENTS, { key: 'gw_resume', after: got[1].cursor });
    const [event] = await reset.waitForEvents(1);
    expect(event).toMatchObject({ __typename: 'SessionReset', session: { messageCount: 5 } });
  });

  it('replays fromStart: a session that does not exist yet, and one with messages, then goes live', async () => {
    t = await startTestServer(kind);
    ws = openWsClient(t.url);
    // a client that holds nothing of a session that does not exist: what is stored before the
    // subscription is set up still arrives, first message first
    const fresh = ws.subscribe(SESSION_EVENTS, { key: 'gw_fresh', fromStart: true });
    for (const content of ['one', 'two']) await mutate(APPEND, { key: 'gw_fresh', content });
    const seen = await fresh.waitForEvents(2);
    expect(seen.map((e) => [e.message.seq, e.message.content])).toEqual([
      [1, 'one'],
      [2, 'two'],
    ]);

    // one with messages: all of them, then the live ones, each once
    const replay = ws.subscribe(SESSION_EVENTS, { key: 'gw_fresh', fromStart: true });
    await replay.waitForEvents(2);
    await mutate(APPEND, { key: 'gw_fresh', content: 'three' });
    const all = await replay.waitForEvents(3);
    expect(all.map((e) => e.message.content)).toEqual(['one', 'two', 'three']);
    expect((await fresh.waitForEvents(3)).map((e) => e.message.content)).toEqual(['one', 'two', 'three']);
    // its last cursor resumes like any other
    const resumed = ws.subscribe(SESSION_EVENTS, { key: 'gw_fresh', after: all[1].cursor });
    expect((await resumed.waitForEvents(1)).map((e) => e.message.content)).toEqual(['three']);
  });

  it('refuses after and fromStart together as a typed error of that operation', async () => {
    t = await startTestServer(kind);
    ws = openWsClient(t.url);
    const first = await mutate(APPEND, { key: 'gw_both', content: 'one' });
    const both = ws.subscribe(SESSION_EVENTS, {
      key: 'gw_both',
      after: first.appendMessage.messageEdge.cursor,
      fromStart: true,
    });
    await both.ended;
    expect(both.results[0]?.errors?.[0]).toMatchObject({
      extensions: { code: 'INVALID', field: 'fromStart' },
    });
    // the socket's other subscriptions are untouched
    const fine = ws.subscribe(SESSION_EVENTS, { key: 'gw_both', fromStart: true });
    expect((await fine.waitForEvents(1))[0].message.content).toBe('one');
  });

  it('refuses a malformed cursor as a typed error of that operation', async () => {
    t = await startTestServer(kind);
    ws = openWsClient(t.url);
    const bad = ws.subscribe(SESSION_EVENTS, { key: 'gw_x', after: 'not-a-cursor' });
    await bad.ended;
    expect(bad.results[0]?.errors?.[0]).toMatchObject({ extensions: { code: 'INVALID', field: 'after' } });
  });
});

describe('live events over server-sent events', () => {
  let t: TestServer | undefined;
  const open: LiveSubscription[] = [];
  afterEach(async () => {
    for (const sub of open.splice(0)) sub.stop();
    await t?.close();
    t = undefined;
  });

  it('streams a session and resumes from the last cursor received', async () => {
    t = await startTestServer('sqlite');
    const first = await t.gql(APPEND, { key: 'sse_s', content: 'one' });
    await t.gql(APPEND, { key: 'sse_s', content: 'two' });
    const sse = subscribeSse(t.url, SESSION_EVENTS, {
      key: 'sse_s',
      after: first.data?.appendMessage.messageEdge.cursor,
    });
    open.push(sse);
    await sse.waitForEvents(1);
    await t.gql(APPEND, { key: 'sse_s', content: 'three' });
    const got = await sse.waitForEvents(2);
    expect(got.map((e) => e.message.content)).toEqual(['two', 'three']);
    sse.stop();
    await t.gql(APPEND, { key: 'sse_s', content: 'four' });
    await t.gql(APPEND, { key: 'sse_s', content: 'five' });
    const resumed = subscribeSse(t.url, SESSION_EVENTS, { key: 'sse_s', after: got[1].cursor });
    open.push(resumed);
    expect((await resumed.waitForEvents(2)).map((e) => e.message.content)).toEqual(['four', 'five']);
  });
});

describe.each(['sqlite', 'jsonl'] as const)(
  'resume over graphql-ws under a concurrent writer: %s',
  (kind) => {
    let t: TestServer | undefined;
    afterEach(async () => {
      await t?.close();
      t = undefined;
    });

    const ALL = `query ($key: String!) { session(key: $key) { messages(first: 1000) {
    edges { node { seq role content } } } } }`;

    async function stored(key: string): Promise<Map<number, string>> {
      const r = await t!.gql(ALL, { key });
      const edges: Json[] = r.data?.session?.messages.edges ?? [];
      return new Map(edges.map((e) => [e.node.seq, `${e.node.role}:${e.node.content}`]));
    }

    /** Rebuilds the session from events; reconnects (new socket now and then) from its last cursor. */
    class Client {
      state = new Map<number, string>();
      /** null until the first event: the client holds nothing, so it subscribes fromStart */
      cursor: string | null = null;
      sawEnd = false;
      private ws: WsClient;

      constructor(
        private readonly key: string,
        private readonly rng: () => number,
      ) {
        this.ws = openWsClient(t!.url);
      }

      private async apply(e: Json): Promise<void> {
        if (e.__typename === 'MessageAppended') {
          expect(this.state.has(e.message.seq), `duplicate seq ${e.message.seq}`).toBe(false);
          expect(e.message.seq).toBeGreaterThan(Math.max(0, ...this.state.keys()));
          this.state.set(e.message.seq, `${e.message.role}:${e.message.content}`);
          if (e.message.content === 'END') this.sawEnd = true;
        } else if (e.__typename === 'MessageRemoved') {
          this.state.delete(e.seq);
        } else if (e.__typename === 'SessionReset') {
          // refetch up to the reset's position: the feed delivers what comes after it
          const upTo = decodeMessageCursor(e.cursor, 'cursor').seq;
          this.state = new Map([...(await stored(this.key))].filter(([seq]) => seq <= upTo));
          if ([...this.state.values()].includes('user:END')) this.sawEnd = true;
        }
        this.cursor = e.cursor;
      }

      /** One subscription: up to `limit` events, applied in order, then unsubscribe. */
      async connection(limit: number): Promise<void> {
        if (this.rng() < 0.3) {
          await this.ws.close();
          this.ws = openWsClient(t!.url);
        }
        let chain = Promise.resolve();
        let n = 0;
        let stopped = false;
        await new Promise<void>((resolve, reject) => {
          const stop = this.ws.client.subscribe(
            {
              query: SESSION_EVENTS,
              variables: { key: this.key, after: this.cursor, fromStart: this.cursor === null },
            },
            {
              next: (result) => {
                chain = chain.then(async () => {
                  if (stopped) return;
                  if (result.errors) throw new Error(JSON.stringify(result.errors));
                  await this.apply((result.data as Json).sessionEvents);
                  if (++n >= limit || this.sawEnd) {
                    stopped = true;
                    stop();
                    resolve();
                  }
                });
                chain.catch(reject);
              },
              error: reject,
              complete: () => chain.then(() => resolve(), reject),
            },
          );
        });
      }

      close(): Promise<void> {
        return this.ws.close();
      }
    }

    it('every client rebuilds the stored session, reconnecting at random', async () => {
      t = await startTestServer(kind);
      const rng = prng(kind === 'sqlite' ? 11 : 12);
      const key = 'gw_race';
      await t.gql(APPEND, { key, content: 'start' });
      const clients = Array.from({ length: 3 }, () => new Client(key, rng));
      const reading = clients.map(async (client) => {
        while (!client.sawEnd) await client.connection(1 + Math.floor(rng() * 15));
      });
      const ops = [
        () => t!.gql(APPEND, { key, content: `m${Math.floor(rng() * 3)}` }),
        () =>
          t!.gql(
            `mutation ($key: String!) { appendMessages(input: { sessionKey: $key, messages: [
          { role: "user", content: "a" }, { role: "assistant", content: "b" }] }) { __typename } }`,
            { key },
          ),
        () =>
          t!.gql(
            `mutation ($key: String!) { removeLastMessage(input: { sessionKey: $key }) { __typename } }`,
            { key },
          ),
        () =>
          t!.gql(`mutation ($key: String!) { compactSession(input: { sessionKey: $key }) { __typename } }`, {
            key,
          }),
        () =>
          t!.gql(
            `mutation ($key: String!) { renameSession(input: { sessionKey: $key, name: "n" }) { __typename } }`,
            { key },
          ),
      ];
      const weights = [0.35, 0.2, 0.3, 0.05, 0.1];
      const pick = () => {
        let r = rng();
        for (const [i, w] of weights.entries()) {
          r -= w;
          if (r < 0) return ops[i]!;
        }
        return ops[0]!;
      };
      for (let done = 0; done < 80; ) {
        const burst = 1 + Math.floor(rng() * 3);
        await Promise.all(Array.from({ length: burst }, () => pick()()));
        done += burst;
        if (rng() < 0.3) await new Promise((resolve) => setTimeout(resolve, rng() * 5));
      }
      await t.gql(APPEND, { key, content: 'END' });
      await Promise.all(reading);
      const expected = await stored(key);
      for (const client of clients) {
        expect(client.state).toEqual(expected);
        await client.close();
      }
    });
  },
);
