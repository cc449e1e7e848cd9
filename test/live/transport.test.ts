/**
 * The WebSocket transport under abuse: bad operations on a socket shared with a live subscription,
 * a client that stops reading during a burst, idle sockets, oversized messages, and shutdown.
 */

import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type WebSocket from 'ws';
import type { SessionBackend } from '../../src/backends/backend.js';
import { createLogger } from '../../src/logger.js';
import { CloseCode } from '../../src/transport/close-codes.js';
import { type LiveSubscription, openWsClient, subscribeSse, type WsClient } from '../helpers/live-client.js';
import { RawWsClient } from '../helpers/raw-ws-client.js';
import { type Json, startTestServer, type TestServer } from '../helpers/server.js';

const EVENTS = `subscription ($key: String!, $after: String, $fromStart: Boolean) {
  sessionEvents(sessionKey: $key, after: $after, fromStart: $fromStart) {
    __typename ... on LiveEvent { cursor } ... on MessageAppended { message { seq content } } } }`;

describe('the WebSocket transport', () => {
  let t: TestServer | undefined;
  let ws: WsClient | undefined;
  const raw: RawWsClient[] = [];
  afterEach(async () => {
    for (const client of raw.splice(0)) client.socket.terminate();
    await ws?.close();
    await t?.close();
    ws = undefined;
    t = undefined;
  });

  const rawClient = (url: string, options?: WebSocket.ClientOptions) => {
    const client = new RawWsClient(url, options);
    raw.push(client);
    return client;
  };

  it('fails a bad document, a validation error or a limit hit alone, never the socket', async () => {
    t = await startTestServer('sqlite', { live: { graphqlWs: { maxOperationsPerSocket: 3 } } });
    ws = openWsClient(t.url);
    const live = ws.subscribe(EVENTS, { key: 'shared', fromStart: true });
    await t.server.backend.append('shared', [{ role: 'user', content: 'before' }]);
    await live.waitForEvents(1);

    const syntax = ws.subscribe('subscription { sessionEvents(sessionKey: ');
    await expect(syntax.ended).rejects.toEqual([
      expect.objectContaining({ message: expect.stringMatching(/Syntax Error/) }),
    ]);
    const invalid = ws.subscribe('subscription { noSuchField }');
    await expect(invalid.ended).rejects.toEqual([
      expect.objectContaining({ message: expect.stringMatching(/noSuchField/) }),
    ]);
    const second = ws.subscribe(EVENTS, { key: 'other' });
    const third = ws.subscribe(EVENTS, { key: 'other' });
    const tooMany = ws.subscribe(EVENTS, { key: 'other' });
    await expect(tooMany.ended).rejects.toEqual([
      expect.objectContaining({ extensions: expect.objectContaining({ code: 'TOO_LARGE', limit: 3 }) }),
    ]);

    second.stop();
    third.stop();
    // queries share the socket too, with the same typed errors as over HTTP
    const query = ws.subscribe(
      '{ session(key: "shared") { messageCount messages(after: "nope") { edges { cursor } } } }',
    );
    await query.ended;
    expect(query.results[0]?.errors?.[0]?.extensions).toMatchObject({ code: 'INVALID', field: 'after' });

    await t.server.backend.append('shared', [{ role: 'user', content: 'after' }]);
    const got = await live.waitForEvents(2);
    expect(got.map((e) => e.message.content)).toEqual(['before', 'after']);
  });

  it('ends a subscriber that stops reading during a burst with FEED_OVERFLOW; others get everything', async () => {
    t = await startTestServer('sqlite', { live: { feed: { maxPending: 1_001, maxPendingBytes: 1 << 30 } } });
    ws = openWsClient(t.url);
    const reader = ws.subscribe(EVENTS, { key: 'burst', fromStart: true });
    const stalled = rawClient(t.url);
    await stalled.init();
    stalled.subscribe('1', EVENTS, { key: 'burst', fromStart: true });
    await t.server.backend.append('burst', [{ role: 'user', content: 'first' }]);
    await stalled.until(() => stalled.results('1').length === 1);
    await reader.waitForEvents(1);
    // stop reading the socket: the kernel buffers fill, then the server's per-subscriber buffer
    stalled.socket.pause();
    const content = 'x'.repeat(4_096);
    for (let batch = 0; batch < 3; batch++) {
      await t.server.backend.append(
        'burst',
        Array.from({ length: 1_000 }, () => ({ role: 'assistant', content })),
      );
      // a reading subscriber keeps up: a batch fits in its buffer
      await reader.waitForEvents(1 + 1_000 * (batch + 1), 30_000);
    }

    stalled.socket.resume();
    await stalled.until((frames) => frames.some((f) => f.id === '1' && f.type === 'complete'));
    const results = stalled.results('1');
    const last = results.at(-1)!;
    expect(last.errors[0].extensions).toMatchObject({ code: 'FEED_OVERFLOW', limit: 1_001, unit: 'events' });
    const delivered = results.filter((r) => r.data).map((r) => r.data.sessionEvents);
    expect(delivered.length).toBeLessThan(3_001);

    // resuming from the last cursor received delivers exactly the rest
    stalled.subscribe('2', EVENTS, { key: 'burst', after: delivered.at(-1).cursor });
    await stalled.until(() => delivered.length + stalled.results('2').length >= 3_001);
    const rest = stalled.results('2').map((r) => r.data.sessionEvents);
    const seqs = [...delivered, ...rest].map((e) => e.message.seq);
    expect(new Set(seqs).size).toBe(3_001);
    expect(seqs).toEqual(reader.events.map((e) => e.message.seq));
    // the server is fine
    expect((await t.gql('{ session(key: "burst") { messageCount } }')).data?.session.messageCount).toBe(
      3_001,
    );
  });

  it('reaps idle, silent and dead sockets, and closes one that sends more than the payload cap', async () => {
    const logged: Json[] = [];
    const destination = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n')) if (line) logged.push(JSON.parse(line));
        done();
      },
    });
    const consoleError = vi.spyOn(console, 'error');
    t = await startTestServer('sqlite', {
      logger: createLogger({ level: 'info', destination }),
      live: {
        graphqlWs: {
          idleTimeoutMs: 200,
          connectionInitWaitTimeoutMs: 300,
          keepAliveMs: 300,
          maxPayloadBytes: 4_096,
        },
      },
    });
    const idle = rawClient(t.url);
    await idle.init();
    // never sends connection_init
    const silent = rawClient(t.url);
    // never answers a ping
    const dead = rawClient(t.url, { autoPong: false });
    await dead.init();
    dead.subscribe('1', EVENTS, { key: 'dead' });
    expect((await idle.closed).code).toBe(CloseCode.IdleTimeout);
    expect((await silent.closed).code).toBe(CloseCode.ConnectionInitialisationTimeout);
    // terminated: no close frame
    expect((await dead.closed).code).toBe(1_006);
    const big = rawClient(t.url);
    await big.init();
    big.subscribe(
      '1',
      `subscription { sessionEvents(sessionKey: "${'k'.repeat(5_000)}") { __typename } }`,
      {},
    );
    expect((await big.closed).code).toBe(CloseCode.MessageTooBig);
    // told in one structured line, not a stack on stderr that any client could repeat at will
    const told = logged.filter((line) => line.msg === 'closed a WebSocket on a client error');
    expect(told).toHaveLength(1);
    expect(told[0]).toMatchObject({ level: 40, reason: 'Max payload size exceeded' });
    expect(told[0].connectionId).toEqual(expect.any(String));
    expect(consoleError).not.toHaveBeenCalled();
    consoleError.mockRestore();
  });

  it('executes a live event once for every subscriber of the same document', async () => {
    let sessionReads = 0;
    const counting = (real: SessionBackend): SessionBackend =>
      new Proxy(real, {
        get(target, property) {
          if (property === 'session') {
            return (key: string) => {
              sessionReads++;
              return target.session(key);
            };
          }
          const value = Reflect.get(target, property);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    t = await startTestServer('sqlite', { wrap: counting });
    ws = openWsClient(t.url);
    const query = `subscription ($key: String!) { sessionEvents(sessionKey: $key) {
      ... on MessageAppended { message { content session { messageCount } } } } }`;
    const subs = Array.from({ length: 20 }, () => ws!.subscribe(query, { key: 'shared_exec' }));
    const other = openWsClient(t.url);
    try {
      // a different document (an alias) is executed on its own
      const aliased = other.subscribe(query.replace('content', 'text: content'), { key: 'shared_exec' });
      // subscriptions without a cursor start from whenever they are set up: warm up until all are
      let count = 0;
      while ([...subs, aliased].some((sub) => sub.events.length === 0)) {
        await t.server.backend.append('shared_exec', [{ role: 'user', content: 'warm-up' }]);
        count++;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const seen = (sub: LiveSubscription) => sub.events.length;
      const before = [...subs, aliased].map(seen);
      sessionReads = 0;
      await t.server.backend.append('shared_exec', [{ role: 'user', content: 'hello' }]);
      for (const [i, sub] of subs.entries()) {
        expect((await sub.waitForEvents(before[i]! + 1)).at(-1)).toEqual({
          message: { content: 'hello', session: { messageCount: count + 1 } },
        });
      }
      expect((await aliased.waitForEvents(before.at(-1)! + 1)).at(-1).message.text).toBe('hello');
      expect(sessionReads).toBe(2);
    } finally {
      await other.close();
    }
  });

  it('shuts down promptly: sockets close with GoingAway, SSE streams end with UNAVAILABLE', async () => {
    t = await startTestServer('sqlite');
    ws = openWsClient(t.url);
    const overWs = ws.subscribe(EVENTS, { key: 'bye', fromStart: true });
    const overSse = subscribeSse(t.url, EVENTS, { key: 'bye', fromStart: true });
    await t.server.backend.append('bye', [{ role: 'user', content: 'hi' }]);
    await overWs.waitForEvents(1);
    await overSse.waitForEvents(1);
    const started = Date.now();
    await t.server.close();
    expect(Date.now() - started).toBeLessThan(3_000);
    await expect(overWs.ended).rejects.toMatchObject({ code: CloseCode.GoingAway });
    await overSse.ended;
    expect(overSse.results.at(-1)?.errors?.[0]?.extensions).toMatchObject({ code: 'UNAVAILABLE' });
  });
});
