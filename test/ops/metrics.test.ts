/**
 * `/metrics` scraped from a real server (it opens its own SQLite store, so the group-commit hook is
 * wired) after real requests over HTTP, graphql-ws and server-sent events: every counter must move
 * by exactly what was done.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBackend } from '../../src/backends/open-backend.js';
import { createLogger } from '../../src/logger.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { openWsClient, subscribeSse } from '../helpers/live-client.js';
import { delta, type Samples, scrapeMetrics } from '../helpers/prometheus.js';
import { postGraphQL, testConfig } from '../helpers/server.js';

const dir = mkdtempSync(join(tmpdir(), 'sg-metrics-'));
let server: RunningServer;

beforeAll(async () => {
  server = await startServer(testConfig('sqlite', dir), {
    logger: createLogger({ level: 'silent' }),
    // small enough that one burst of large messages overflows a subscriber (the slow-consumer case)
    feed: { maxPendingBytes: 20_000 },
  });
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const APPEND = `mutation Add($key: String!, $content: String!, $seq: Int) {
  appendMessage(input: { sessionKey: $key, role: "user", content: $content, expectedLastSeq: $seq }) {
    __typename } }`;
const APPEND_MANY = `mutation AddMany($key: String!, $messages: [NewMessageInput!]!) {
  appendMessages(input: { sessionKey: $key, messages: $messages }) { __typename } }`;
const EVENTS = `subscription Follow($key: String!) {
  sessionEvents(sessionKey: $key) { __typename ... on LiveEvent { cursor } } }`;

const scrape = () => scrapeMetrics(server.url);

/** Scrapes until `ready` holds: connections and subscriptions register a moment after the client sends. */
async function scrapeUntil(ready: (samples: Samples) => boolean): Promise<Samples> {
  for (let attempt = 0; ; attempt++) {
    const samples = await scrape();
    if (ready(samples)) return samples;
    if (attempt === 200) throw new Error('the metrics never reached the expected state');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('/metrics', () => {
  it('counts queries, mutations and errors by operation, their latency, and the storage calls behind them', async () => {
    const before = await scrape();
    // five concurrent appends: group commit may put them in one transaction or several
    await Promise.all(
      [1, 2, 3, 4, 5].map((n) => postGraphQL(server.url, APPEND, { key: `m-${n}`, content: `hello ${n}` })),
    );
    const conflict = await postGraphQL(server.url, APPEND, { key: 'm-1', content: 'late', seq: 0 });
    expect(conflict.data?.appendMessage.__typename).toBe('ConflictError');
    for (let i = 0; i < 2; i++) {
      const read = await postGraphQL(server.url, 'query Read { sessions { edges { cursor } } }');
      expect(read.errors).toBeUndefined();
    }
    const invalid = await postGraphQL(server.url, 'query Typo { nope }');
    expect(invalid.errors?.length).toBe(1);
    const after = await scrape();

    const requests = 'sessiongraph_graphql_requests_total';
    expect(delta(before, after, requests, { operationName: 'Add', operationType: 'mutation' })).toBe(6);
    expect(delta(before, after, requests, { operationName: 'Read', operationType: 'query' })).toBe(2);
    const errors = 'sessiongraph_graphql_errors_total';
    expect(
      delta(before, after, errors, { operationName: 'Typo', operationType: 'query', phase: 'validate' }),
    ).toBe(1);
    expect(
      delta(before, after, errors, { operationName: 'Read', operationType: 'query', phase: 'execute' }),
    ).toBe(0);

    const duration = 'sessiongraph_graphql_request_duration_seconds_count';
    expect(delta(before, after, duration, { operationName: 'Read', operationType: 'query' })).toBe(2);
    expect(
      delta(before, after, 'sessiongraph_graphql_request_duration_seconds_sum', {
        operationName: 'Read',
        operationType: 'query',
      }),
    ).toBeGreaterThan(0);
    const http = 'sessiongraph_http_request_duration_seconds_count';
    expect(
      delta(before, after, http, {
        method: 'POST',
        operationName: 'Add',
        operationType: 'mutation',
        statusCode: 200,
      }),
    ).toBe(6);

    const storage = 'sessiongraph_backend_operation_duration_seconds_count';
    expect(delta(before, after, storage, { operation: 'append', outcome: 'ok' })).toBe(5);
    expect(delta(before, after, storage, { operation: 'append', outcome: 'CONFLICT' })).toBe(1);
    expect(delta(before, after, storage, { operation: 'sessions', outcome: 'ok' })).toBe(2);

    // every write went through exactly one group transaction (the conflict's was rolled back)
    const group = 'sessiongraph_sqlite_group_commit_requests';
    expect(delta(before, after, `${group}_sum`)).toBe(6);
    const transactions = delta(before, after, `${group}_count`);
    expect(transactions).toBeGreaterThanOrEqual(1);
    expect(transactions).toBeLessThanOrEqual(6);
    expect(delta(before, after, 'sessiongraph_sqlite_group_commit_rows_sum')).toBe(6);

    const published = 'sessiongraph_events_published_total';
    expect(delta(before, after, published, { type: 'MessageAppended' })).toBe(5);
    expect(after.get('process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('counts WebSocket connections, live subscriptions, and events published and delivered', async () => {
    const ws = openWsClient(server.url);
    const first = ws.subscribe(EVENTS, { key: 'live' });
    const second = ws.subscribe(EVENTS, { key: 'live' });
    const sse = subscribeSse(server.url, EVENTS, { key: 'live' });
    const activity = ws.subscribe('subscription Watch { sessionActivity { kind sessionKey } }');
    const open = (s: Samples) => s.get('sessiongraph_subscriptions_active{field="sessionEvents"}');
    const watching = (s: Samples) => s.get('sessiongraph_subscriptions_active{field="sessionActivity"}');
    const during = await scrapeUntil((s) => open(s) === 3 && watching(s) === 1);
    expect(during.get('sessiongraph_websocket_connections')).toBe(1);

    await postGraphQL(server.url, APPEND_MANY, {
      key: 'live',
      messages: [1, 2, 3].map((n) => ({ role: 'assistant', content: `part ${n}` })),
    });
    await Promise.all([first.waitForEvents(3), second.waitForEvents(3), sse.waitForEvents(3)]);
    await activity.waitForEvents(1);
    first.stop();
    await first.ended;
    const afterFirst = await scrape();
    second.stop();
    activity.stop();
    sse.stop();
    await ws.close();
    const after = await scrapeUntil((s) => s.get('sessiongraph_websocket_connections') === 0);

    expect(delta(during, after, 'sessiongraph_events_published_total', { type: 'MessageAppended' })).toBe(3);
    // three subscribers of the session, three events each
    expect(delta(during, after, 'sessiongraph_events_delivered_total', { field: 'sessionEvents' })).toBe(9);
    expect(
      delta(during, after, 'sessiongraph_events_delivered_total', { field: 'sessionActivity' }),
    ).toBeGreaterThanOrEqual(1);
    expect(open(afterFirst)).toBe(2);
    expect(after.get('sessiongraph_websocket_connections')).toBe(0);
    expect(open(after) ?? 0).toBe(0);
    expect(watching(after)).toBe(0);
    const ended = 'sessiongraph_subscriptions_ended_total';
    expect(delta(during, after, ended, { field: 'sessionEvents', reason: 'complete' })).toBe(3);
    expect(delta(during, after, 'sessiongraph_subscriptions_started_total', { field: 'sessionEvents' })).toBe(
      0,
    );
    expect(
      after.get('sessiongraph_subscriptions_started_total{field="sessionEvents"}'),
    ).toBeGreaterThanOrEqual(3);
  });

  it('counts a subscriber dropped for falling behind (FEED_OVERFLOW)', async () => {
    const ws = openWsClient(server.url);
    const slow = ws.subscribe(EVENTS, { key: 'burst' });
    const before = await scrapeUntil(
      (s) => s.get('sessiongraph_subscriptions_active{field="sessionEvents"}') === 1,
    );
    // one batch of 8 events of ~8 KiB each, published in one go: more than 20,000 bytes pending
    await postGraphQL(server.url, APPEND_MANY, {
      key: 'burst',
      messages: Array.from({ length: 8 }, (_, n) => ({ role: 'tool', content: `${n}`.padEnd(4_000, 'x') })),
    });
    await slow.waitFor((s) => s.results.some((r) => r.errors?.[0]?.extensions?.code === 'FEED_OVERFLOW'));
    await ws.close();
    const after = await scrape();
    expect(delta(before, after, 'sessiongraph_feed_overflows_total', { field: 'sessionEvents' })).toBe(1);
    expect(
      delta(before, after, 'sessiongraph_subscriptions_ended_total', {
        field: 'sessionEvents',
        reason: 'FEED_OVERFLOW',
      }),
    ).toBe(1);
  });

  it('gives a second server in the process the process metrics and counters of its own', async () => {
    const other = mkdtempSync(join(tmpdir(), 'sg-metrics-second-'));
    const second = await startServer(testConfig('sqlite', other), {
      logger: createLogger({ level: 'silent' }),
    });
    try {
      const before = await scrape();
      await postGraphQL(second.url, APPEND, { key: 'metrics_second', content: 'hello' });
      const [mine, theirs] = await Promise.all([scrape(), scrapeMetrics(second.url)]);
      // one set of process collectors serves both: the same process, the same figures
      for (const name of [
        'process_resident_memory_bytes',
        'nodejs_eventloop_lag_seconds',
        'nodejs_heap_size_used_bytes',
      ]) {
        expect(mine.has(name), name).toBe(true);
        expect(theirs.has(name), name).toBe(true);
      }
      // the append counts on the server that took it, not on this one
      const published = 'sessiongraph_events_published_total';
      expect(delta(before, mine, published, { type: 'MessageAppended' })).toBe(0);
      expect(delta(new Map(), theirs, published, { type: 'MessageAppended' })).toBe(1);
    } finally {
      await second.close();
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('is not served with metrics turned off', async () => {
    const other = mkdtempSync(join(tmpdir(), 'sg-no-metrics-'));
    const backend = await openBackend({ kind: 'sqlite', dataDir: other });
    const quiet = await startServer(testConfig('sqlite', other, { metrics: false }), {
      backend,
      logger: createLogger({ level: 'silent' }),
    });
    try {
      expect((await fetch(new URL('/metrics', quiet.url))).status).toBe(404);
      expect((await postGraphQL(quiet.url, '{ __typename }')).data).toEqual({ __typename: 'Query' });
    } finally {
      await quiet.close();
      await backend.close();
      rmSync(other, { recursive: true, force: true });
    }
  });
});
