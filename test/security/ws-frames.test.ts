/**
 * What one WebSocket may send, through a real server and real sockets: the inbound message budget
 * (a 10,000-frame flood or a ping flood is closed with MessageRateExceeded and the rest of it is
 * not handled, while a client within its budget and the other clients go on), the close codes (one
 * cause each, none of ours shared with graphql-ws, all in the README), and messages that are not
 * UTF-8 (text or binary) closed with 1007 before anything of them runs.
 */

import { readFileSync } from 'node:fs';
import { CloseCode as GraphQLWsCloseCode } from 'graphql-ws';
import { afterEach, describe, expect, it } from 'vitest';
import { parseTokenSpecs } from '../../src/auth/token-spec.js';
import { CloseCode } from '../../src/transport/close-codes.js';
import { createFrameBudget } from '../../src/transport/frame-budget.js';
import { openWsClient, type WsClient } from '../helpers/live-client.js';
import { RawWsClient } from '../helpers/raw-ws-client.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const EVENTS = `subscription ($key: String!, $fromStart: Boolean) {
  sessionEvents(sessionKey: $key, fromStart: $fromStart) { __typename ... on MessageAppended { message { content } } } }`;
const APPEND = `mutation ($key: String!, $content: String!) {
  appendMessage(input: { sessionKey: $key, role: "user", content: $content }) { __typename } }`;
const FLOOD = 10_000;

let t: TestServer | undefined;
const raws: RawWsClient[] = [];
const clients: WsClient[] = [];
afterEach(async () => {
  for (const raw of raws.splice(0)) raw.close();
  for (const client of clients.splice(0)) await client.close();
  await t?.close();
  t = undefined;
});

/** Resolves once `condition` holds, checking on every turn of the event loop. */
function until(condition: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = () => (condition() ? resolve() : setImmediate(check));
    check();
  });
}

function raw(url: string): RawWsClient {
  const client = new RawWsClient(url);
  raws.push(client);
  return client;
}

function ws(url: string, token?: string): WsClient {
  const client = openWsClient(url, { token });
  clients.push(client);
  return client;
}

describe('the frame budget (a token bucket)', () => {
  it('spends a burst at once, then refills at the rate, never above the burst', () => {
    let now = 0;
    const budget = createFrameBudget(10, 3, () => now);
    expect([budget.take(), budget.take(), budget.take(), budget.take()]).toEqual([true, true, true, false]);
    now += 99; // 0.99 of a message refilled
    expect(budget.take()).toBe(false);
    now += 2;
    expect([budget.take(), budget.take()]).toEqual([true, false]);
    now += 60_000; // a long quiet spell refills to the burst, not beyond
    expect([budget.take(), budget.take(), budget.take(), budget.take()]).toEqual([true, true, true, false]);
  });
});

describe('the inbound message budget of a WebSocket', () => {
  it('closes a socket flooding 10,000 subscribes with MessageRateExceeded; other clients go on', async () => {
    t = await startTestServer('sqlite');
    const calm = ws(t.url);
    await t.gql(APPEND, { key: 'calm', content: 'before' });
    const live = calm.subscribe(EVENTS, { key: 'calm', fromStart: true });
    await live.waitForEvents(1);

    const flooder = raw(t.url);
    await flooder.init();
    const start = performance.now();
    for (let i = 0; i < FLOOD; i++) flooder.subscribe(String(i), EVENTS, { key: `flood_${i}` });
    // without a budget all 9,900 refusals (over the 100-operation cap) would come back instead
    const outcome = await Promise.race([
      flooder.closed,
      flooder.until((f) => f.length >= FLOOD - 100).then(() => ({ code: 0, reason: 'all handled' })),
    ]);
    expect(outcome).toEqual({ code: CloseCode.MessageRateExceeded, reason: 'Too many messages' });
    // nothing past the budget was handled: 300 at once (connection_init included), 100 a second after
    const seconds = (performance.now() - start) / 1_000;
    const handled = flooder.frames.filter((f) => f.id !== undefined).map((f) => Number(f.id));
    expect(Math.max(...handled)).toBeLessThan(300 + Math.ceil(100 * seconds));

    // the well-behaved socket is untouched, and HTTP answers
    await t.gql(APPEND, { key: 'calm', content: 'after' });
    const events = await live.waitForEvents(2);
    expect(events.map((e) => e.message.content)).toEqual(['before', 'after']);
    expect((await t.gql('{ __typename }')).data).toEqual({ __typename: 'Query' });
  });

  it('counts pings too: a socket pinging faster than its budget is closed with MessageRateExceeded', async () => {
    t = await startTestServer('sqlite');
    const flooder = raw(t.url);
    await flooder.init();
    let pongs = 0;
    flooder.socket.on('pong', () => pongs++);
    let closed: { code: number } | undefined;
    void flooder.closed.then((c) => {
      closed = c;
    });
    // rounds of 50 pings, each answered before the next (ws alone terminates a socket with 60
    // unanswered), until the server closes the socket
    for (let sent = 0; closed === undefined && sent < FLOOD; sent += 50) {
      for (let i = 0; i < 50; i++) flooder.socket.ping();
      await Promise.race([flooder.closed, until(() => pongs >= sent + 50)]);
    }
    expect((await flooder.closed).code).toBe(CloseCode.MessageRateExceeded);
  });

  it('lets a client send its whole burst at once and go on (299 pings after connection_init)', async () => {
    t = await startTestServer('sqlite');
    const client = raw(t.url);
    await client.init();
    for (let i = 0; i < 299; i++) client.send({ type: 'ping' });
    await client.until((f) => f.filter((x) => x.type === 'pong').length === 299);
    client.subscribe('q', '{ __typename }');
    await client.until((f) => f.some((x) => x.id === 'q' && x.type === 'complete'));
    expect(client.socket.readyState).toBe(client.socket.OPEN);
  });

  it('takes its rate and burst from --ws-message-rate and --ws-message-burst', async () => {
    t = await startTestServer('sqlite', { config: { wsMessageRate: 1, wsMessageBurst: 5 } });
    const client = raw(t.url);
    await client.init();
    // 4 more fit in a burst of 5; the refill (1 a second) cannot cover 10 more sent at once
    for (let i = 0; i < 14; i++) client.send({ type: 'ping' });
    expect((await client.closed).code).toBe(CloseCode.MessageRateExceeded);
    const pongs = client.frames.filter((f) => f.type === 'pong').length;
    expect(pongs).toBeGreaterThanOrEqual(4);
    expect(pongs).toBeLessThan(14);
  });
});

describe('close codes', () => {
  const OURS = ['IdleTimeout', 'TooManyConnections', 'MessageRateExceeded'] as const;

  it('gives every cause its own code, none of ours shared with graphql-ws, each in the README', () => {
    const codes = Object.values(CloseCode);
    expect(new Set(codes).size).toBe(codes.length);
    const graphqlWs = Object.values(GraphQLWsCloseCode).filter((v) => typeof v === 'number');
    for (const name of OURS) {
      expect(CloseCode[name]).toBeGreaterThanOrEqual(4_000);
      expect(graphqlWs).not.toContain(CloseCode[name]);
    }
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const table = readme.slice(readme.indexOf('WebSocket close codes'));
    const listed = new Set(
      [...table.matchAll(/^\| ([\d, ]+) \|/gm)].flatMap((m) => m[1]!.split(',').map((c) => Number(c))),
    );
    for (const code of codes) expect(listed, `close code ${code} in the README`).toContain(code);
  });

  it('closes one connection too many for a token with 4001, and a second connection_init with 4429', async () => {
    const token = 'a-long-enough-secret-ws-frames';
    t = await startTestServer('sqlite', {
      config: { tokens: parseTokenSpecs([`one:${token}:read`]), maxConnectionsPerToken: 1 },
    });
    const first = raw(t.url);
    await first.init({ token });
    const second = raw(t.url);
    await second.open();
    second.send({ type: 'connection_init', payload: { token } });
    expect((await second.closed).code).toBe(4_001);

    first.send({ type: 'connection_init', payload: { token } });
    expect((await first.closed).code).toBe(GraphQLWsCloseCode.TooManyInitialisationRequests);
    expect(CloseCode.TooManyConnections).not.toBe(GraphQLWsCloseCode.TooManyInitialisationRequests);
  });
});

describe('messages that are not UTF-8', () => {
  const subscribeFrame = (content: Buffer) =>
    Buffer.concat([
      Buffer.from(
        `{"id":"1","type":"subscribe","payload":{"query":"mutation { appendMessage(input: { sessionKey: \\"utf8\\", role: \\"user\\", content: \\"a`,
      ),
      content,
      Buffer.from('\\" }) { __typename } }"}}'),
    ]);

  it.each([
    ['a text', false],
    ['a binary', true],
  ])('closes %s message with bad UTF-8 with 1007 and stores nothing', async (_, binary) => {
    t = await startTestServer('sqlite');
    const client = raw(t.url);
    await client.init();
    client.socket.send(subscribeFrame(Buffer.from([0xed, 0xa0, 0x80, 0xff])), { binary });
    expect((await client.closed).code).toBe(CloseCode.InvalidFramePayloadData);
    expect(await t.backend.session('utf8')).toBeNull();
  });

  it('runs a binary message that is valid UTF-8 like a text one', async () => {
    t = await startTestServer('sqlite');
    const client = raw(t.url);
    await client.init();
    client.socket.send(subscribeFrame(Buffer.from('é', 'utf8')), { binary: true });
    await client.until((f) => f.some((x) => x.type === 'complete'));
    expect(client.of('1')[0].payload.data.appendMessage.__typename).toBe('AppendMessagePayload');
    expect((await t.backend.messages('utf8')).items[0]?.content).toBe('aé');
  });
});
