/**
 * Every configurable limit, hit on a real server started from a Config alone (as `serve` does),
 * over each transport it applies to: a typed error with a stable `extensions.code`, the limit and
 * the refused value, and a message that says both. Then the defaults: ordinary Relay queries pass.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { type LiveResult, openWsClient, subscribeSse, type WsClient } from '../helpers/live-client.js';
import { parseServeArgs } from '../helpers/serve-config.js';
import { type Json, postGraphQL, testConfig } from '../helpers/server.js';

const TIGHT = {
  maxQueryDepth: 5,
  maxAliases: 3,
  maxQueryTokens: 200,
  maxDirectives: 2,
  maxQueryCost: 300,
  maxBodyBytes: 8_192,
  maxPageSize: 20,
  maxBatchMessages: 3,
  maxSearchQueryBytes: 64,
  maxSubscriptionsPerConnection: 2,
} as const;

interface Served {
  server: RunningServer;
  url: string;
  close(): Promise<void>;
}

/** A server that opens its own store from the config, like `sessiongraph serve`. */
async function serve(overrides: Parameters<typeof testConfig>[2]): Promise<Served> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sg-limits-'));
  const server = await startServer(testConfig('sqlite', dataDir, overrides), {
    logger: createLogger({ level: 'silent' }),
  });
  return {
    server,
    url: server.url,
    async close() {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function post(url: string, body: string, contentType = 'application/json') {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': contentType }, body });
  return { status: response.status, body: (await response.json()) as Json };
}

/** A POST whose body streams without a Content-Length (chunked transfer encoding). */
function postChunked(url: string, chunks: string[]): Promise<{ status: number; body: Json }> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => {
          text += chunk.toString('utf8');
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

/** The errors the first result of a live operation carried, or that ended it. */
async function liveErrors(sub: { results: LiveResult[]; ended: Promise<void> }): Promise<Json[]> {
  try {
    await sub.ended;
  } catch (errors) {
    return errors as Json[];
  }
  return sub.results[0]?.errors ?? [];
}

const APPENDED = (inner: string) =>
  `subscription { sessionEvents(sessionKey: "s") { ... on MessageAppended { ${inner} } } }`;

/** One document per limit, as a query and as a subscription (for SSE), with what it must raise. */
const DOCUMENT_LIMITS = [
  {
    code: 'QUERY_TOO_DEEP',
    limit: TIGHT.maxQueryDepth,
    actual: 7,
    query: '{ sessions { edges { node { messages { edges { node { content } } } } } } }',
    subscription: APPENDED('message { session { messages { edges { node { content } } } } }'),
  },
  {
    code: 'TOO_MANY_ALIASES',
    limit: TIGHT.maxAliases,
    actual: 4,
    query: '{ a: backend { kind } b: backend { kind } c: backend { kind } d: backend { kind } }',
    subscription: APPENDED('a: cursor b: cursor c: cursor d: cursor'),
  },
  {
    code: 'TOO_MANY_DIRECTIVES',
    limit: TIGHT.maxDirectives,
    actual: 3,
    query: '{ backend @include(if: true) { kind @skip(if: false) version @skip(if: false) } }',
    subscription: APPENDED(
      'cursor @include(if: true) sessionKey @skip(if: false) c: cursor @skip(if: false)',
    ),
  },
  {
    code: 'TOO_MANY_TOKENS',
    limit: TIGHT.maxQueryTokens,
    actual: undefined,
    query: `{ backend { ${'kind '.repeat(250)} } }`,
    subscription: APPENDED('cursor '.repeat(250)),
  },
  {
    code: 'QUERY_TOO_COMPLEX',
    limit: TIGHT.maxQueryCost,
    actual: 'over',
    query: '{ sessions(first: 20) { edges { node { key name messageCount } } } }',
    subscription: APPENDED('message { session { messages(first: 20) { edges { cursor } } } }'),
  },
] as const;

function expectLimitError(errors: Json[], code: string, limit: number, actual: number | 'over' | undefined) {
  const error = errors.find((e: Json) => e.extensions?.code === code);
  expect(error, JSON.stringify(errors)).toBeDefined();
  expect(error.extensions.limit).toBe(limit);
  expect(error.message).toContain(String(limit));
  if (actual === undefined) return;
  if (actual === 'over') expect(error.extensions.actual).toBeGreaterThan(limit);
  else expect(error.extensions.actual).toBe(actual);
  expect(error.message).toContain(String(error.extensions.actual));
}

describe('limits, each configured small and hit', () => {
  let s: Served;
  let ws: WsClient;

  beforeAll(async () => {
    s = await serve(TIGHT);
    ws = openWsClient(s.url);
  });
  afterAll(async () => {
    await ws?.close();
    await s?.close();
  });

  for (const c of DOCUMENT_LIMITS) {
    it(`${c.code} over HTTP, SSE and graphql-ws`, async () => {
      const http = await post(s.url, JSON.stringify({ query: c.query }));
      expect(http.status).toBeLessThan(500);
      expect(http.body.data).toBeUndefined();
      expectLimitError(http.body.errors, c.code, c.limit, c.actual);

      const sse = subscribeSse(s.url, c.subscription);
      expectLimitError(await liveErrors(sse), c.code, c.limit, c.actual);

      for (const document of [c.query, c.subscription]) {
        expectLimitError(await liveErrors(ws.subscribe(document)), c.code, c.limit, c.actual);
      }
    });
  }

  it('a document under every limit runs on all three transports', async () => {
    const ok = await postGraphQL(s.url, '{ a: backend { kind } b: sessions(first: 5) { edges { cursor } } }');
    expect(ok.errors).toBeUndefined();
    expect(ok.data?.a.kind).toBe('SQLITE');
    const query = ws.subscribe('{ backend { limits { maxPageSize maxBatchMessages maxSearchQueryBytes } } }');
    await query.ended;
    expect(query.results[0]?.data?.backend.limits).toEqual({
      maxPageSize: TIGHT.maxPageSize,
      maxBatchMessages: TIGHT.maxBatchMessages,
      maxSearchQueryBytes: TIGHT.maxSearchQueryBytes,
    });
  });

  it('BODY_TOO_LARGE with 413, by Content-Length and by counting a chunked body', async () => {
    const big = JSON.stringify({ query: '{ backend { kind } }', variables: { pad: 'x'.repeat(10_000) } });
    const declared = await post(s.url, big);
    expect(declared.status).toBe(413);
    expect(declared.body.errors[0].extensions).toEqual({
      code: 'BODY_TOO_LARGE',
      limit: TIGHT.maxBodyBytes,
      actual: Buffer.byteLength(big),
    });
    expect(declared.body.errors[0].message).toContain(String(TIGHT.maxBodyBytes));

    const chunked = await postChunked(s.url, [big.slice(0, 5_000), big.slice(5_000)]);
    expect(chunked.status).toBe(413);
    expect(chunked.body.errors[0].extensions).toEqual({ code: 'BODY_TOO_LARGE', limit: TIGHT.maxBodyBytes });

    const small = await postChunked(s.url, ['{"query":', '"{ backend { kind } }"}']);
    expect(small).toEqual({ status: 200, body: { data: { backend: { kind: 'SQLITE' } } } });
  });

  it('page size, batch size and search query bytes are TOO_LARGE with the configured limit', async () => {
    const page = await postGraphQL(s.url, '{ sessions(first: 21) { edges { cursor } } }');
    expect(page.errors?.[0]?.extensions).toMatchObject({
      code: 'TOO_LARGE',
      field: 'first',
      limit: 20,
      actual: 21,
    });
    // a literal page over the cap refuses the whole document before anything runs, and is not
    // reported as cost (whose estimate multiplies by the refused size)
    const mixed = await postGraphQL(s.url, '{ backend { kind } sessions(last: 5000) { edges { cursor } } }');
    expect(mixed.data).toBeUndefined();
    expect(mixed.errors?.map((e) => e.extensions?.code)).toEqual(['TOO_LARGE']);

    const batch = await postGraphQL(
      s.url,
      `mutation ($m: [NewMessageInput!]!) { appendMessages(input: { sessionKey: "b", messages: $m }) {
         __typename ... on TooLargeError { code limit actual field } } }`,
      { m: Array.from({ length: 4 }, (_, i) => ({ role: 'user', content: `m${i}` })) },
    );
    expect(batch.data?.appendMessages).toEqual({
      __typename: 'TooLargeError',
      code: 'TOO_LARGE',
      limit: 3,
      actual: 4,
      field: 'messages',
    });

    const query = 'word '.repeat(13);
    const search = await postGraphQL(
      s.url,
      'query ($q: String!) { search(query: $q) { edges { cursor } } }',
      {
        q: query,
      },
    );
    expect(search.errors?.[0]?.extensions).toMatchObject({
      code: 'TOO_LARGE',
      field: 'query',
      limit: 64,
      actual: Buffer.byteLength(query),
    });
    const fits = await postGraphQL(s.url, 'query ($q: String!) { search(query: $q) { edges { cursor } } }', {
      q: 'word '.repeat(12),
    });
    expect(fits.errors).toBeUndefined();
  });

  it('TOO_MANY_VARIABLE_VALUES past 4 values per batch message plus 1,000, on every transport', async () => {
    const limit = 4 * TIGHT.maxBatchMessages + 1_000;
    // a list where a string belongs: short enough for the 8 KiB body limit
    const filter = { keyPrefix: Array.from({ length: limit }, () => 0) };
    const query = 'query ($f: SessionFilter) { sessions(filter: $f) { edges { cursor } } }';
    const http = await post(s.url, JSON.stringify({ query, variables: { f: filter } }));
    expect(http.body.errors).toEqual([
      {
        message: `the variables hold more than ${limit} values; the limit is ${limit}`,
        extensions: { code: 'TOO_MANY_VARIABLE_VALUES', limit },
      },
    ]);
    const live =
      'subscription ($k: String!, $a: String) { sessionEvents(sessionKey: $k, after: $a) { __typename } }';
    const variables = { k: 'a', a: Array.from({ length: limit }, () => 0) };
    expect((await liveErrors(ws.subscribe(query, { f: filter })))[0]?.extensions?.code).toBe(
      'TOO_MANY_VARIABLE_VALUES',
    );
    expect((await liveErrors(subscribeSse(s.url, live, variables)))[0]?.extensions?.code).toBe(
      'TOO_MANY_VARIABLE_VALUES',
    );
    // exactly the limit (the variables object, `f` and the list count too) passes the count and
    // meets the ordinary variable check
    const fewer = { keyPrefix: Array.from({ length: limit - 3 }, () => 0) };
    const checked = await post(s.url, JSON.stringify({ query, variables: { f: fewer } }));
    expect(checked.body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
  });

  it('subscriptions per connection: one more than the limit fails alone, typed', async () => {
    const client = openWsClient(s.url);
    try {
      const subs = [1, 2].map(() => client.subscribe('subscription { sessionActivity { __typename } }'));
      const third = client.subscribe('subscription { sessionActivity { __typename } }');
      const errors = await liveErrors(third);
      expect(errors[0]?.extensions).toMatchObject({ code: 'TOO_LARGE', limit: 2, actual: 3 });
      expect(errors[0]?.message).toContain('this would be 3');
      for (const sub of subs) sub.stop();
    } finally {
      await client.close();
    }
  });

  it('batched requests are refused; a body of another type gets a GraphQL 415', async () => {
    const batch = await post(
      s.url,
      JSON.stringify([{ query: '{ backend { kind } }' }, { query: '{ __typename }' }]),
    );
    expect(batch.status).toBe(400);
    expect(batch.body.errors[0]).toMatchObject({
      message: 'Batching is not supported.',
      extensions: { code: 'BAD_REQUEST' },
    });
    const xml = await post(s.url, '<query/>', 'application/xml');
    expect(xml.status).toBe(415);
    expect(xml.body.errors[0].extensions.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(xml.body.errors[0].message).toContain('application/json');
  });

  it('suggestions stay in development mode', async () => {
    const typo = await postGraphQL(s.url, '{ sesions { edges { cursor } } }');
    expect(typo.errors?.[0]?.message).toMatch(/Did you mean "sessions"/);
  });
});

describe('production mode', () => {
  let s: Served;

  beforeAll(async () => {
    s = await serve({ production: true });
  });
  afterAll(async () => {
    await s?.close();
  });

  it('refuses introspection over HTTP and graphql-ws; __typename still works', async () => {
    for (const query of ['{ __schema { types { name } } }', '{ __type(name: "Session") { name } }']) {
      const result = await postGraphQL(s.url, query);
      expect(result.data).toBeUndefined();
      expect(result.errors?.[0]).toMatchObject({
        message: 'introspection is disabled on this server',
        extensions: { code: 'INTROSPECTION_DISABLED' },
      });
    }
    const ws = openWsClient(s.url);
    try {
      const errors = await liveErrors(ws.subscribe('{ __schema { queryType { name } } }'));
      expect(errors[0]?.extensions?.code).toBe('INTROSPECTION_DISABLED');
    } finally {
      await ws.close();
    }
    expect((await postGraphQL(s.url, '{ __typename }')).data).toEqual({ __typename: 'Query' });
  });

  it('serves no GraphiQL page', async () => {
    const response = await fetch(s.url, { headers: { accept: 'text/html' } });
    expect(response.status).toBeLessThan(500);
    expect(await response.text()).not.toMatch(/graphiql/i);
  });

  it('drops "Did you mean" from validation and variable errors', async () => {
    const typo = await postGraphQL(s.url, '{ sesions { edges { cursor } } }');
    expect(typo.errors?.[0]?.message).toBe('Cannot query field "sesions" on type "Query".');
    const badEnum = await postGraphQL(
      s.url,
      'query ($o: SearchOrder) { search(query: "x", orderBy: $o) { edges { cursor } } }',
      { o: 'NEWES' },
    );
    expect(badEnum.errors?.[0]?.message).toMatch(/NEWES/);
    expect(badEnum.errors?.[0]?.message).not.toMatch(/Did you mean/);
  });
});

describe('the limits in the configuration', () => {
  const parse = parseServeArgs;

  it('has defaults, reads flags and SESSIONGRAPH_* variables, and names a bad value', () => {
    const defaults = parse([]);
    expect(defaults).toMatchObject({
      maxQueryDepth: 12,
      maxQueryCost: 200_000,
      maxAliases: 30,
      maxQueryTokens: 2_000,
      maxDirectives: 50,
      maxBodyBytes: 4_194_304,
      wsMaxPayloadBytes: 4_194_304,
      maxPageSize: 1_000,
      maxBatchMessages: 1_000,
      maxSearchQueryBytes: 1_024,
      maxSubscriptionsPerConnection: 100,
      wsMessageRate: 100,
      wsMessageBurst: 300,
      production: false,
    });
    expect(parse(['--max-query-depth', '20', '--production'])).toMatchObject({
      maxQueryDepth: 20,
      production: true,
    });
    expect(
      parse([], {
        SESSIONGRAPH_MAX_ALIASES: '5',
        SESSIONGRAPH_PRODUCTION: 'false',
        SESSIONGRAPH_MAX_PAGE_SIZE: '50',
      }),
    ).toMatchObject({ maxAliases: 5, production: false, maxPageSize: 50 });
    expect(() => parse(['--production', 'maybe'])).toThrow(ConfigError);
    expect(() => parse([], { SESSIONGRAPH_MAX_BODY_BYTES: '12' })).toThrow(/SESSIONGRAPH_MAX_BODY_BYTES/);
    // a message as large as allowed must fit in a request body
    expect(() => parse(['--max-content-bytes', '2000000', '--max-body-bytes', '1048576'])).toThrow(
      /--max-body-bytes .*at least --max-content-bytes \(2000000\); got 1048576/,
    );
    expect(parse(['--max-content-bytes', '2000000', '--max-body-bytes', '8388608']).maxBodyBytes).toBe(
      8_388_608,
    );
    // and in a WebSocket message
    expect(() => parse(['--max-content-bytes', '2000000', '--ws-max-payload-bytes', '1048576'])).toThrow(
      /--ws-max-payload-bytes .*at least --max-content-bytes \(2000000\); got 1048576/,
    );
  });
});

describe('the defaults', () => {
  let s: Served;

  beforeAll(async () => {
    s = await serve({});
  });
  afterAll(async () => {
    await s?.close();
  });

  it('let ordinary Relay queries through: nested pages, search down to the session, a full page', async () => {
    const queries = [
      `{ sessions(first: 50) { edges { cursor node { key name messageCount
          messages(last: 20) { edges { cursor node { id seq role content createdAt } } pageInfo { hasPreviousPage startCursor } } } }
          pageInfo { hasNextPage endCursor } } }`,
      `{ search(query: "hello", first: 50) { edges { cursor node { score snippet snippetMatches { start end }
          message { seq content session { key messages(last: 10) { edges { node { content } } } } } } } } }`,
      '{ session(key: "a") { messages(first: 1000) { edges { cursor node { id seq role content createdAt } } } } }',
    ];
    for (const query of queries) {
      const result = await postGraphQL(s.url, query);
      expect(result.errors, query).toBeUndefined();
    }
  });

  it('refuse fan-out and recursion that no screen needs', async () => {
    const fanOut = await postGraphQL(
      s.url,
      '{ sessions(first: 100) { edges { node { messages(first: 100) { edges { node { content } } } } } } }',
    );
    expect(fanOut.errors?.[0]?.extensions?.code).toBe('QUERY_TOO_COMPLEX');
    // sessions.edges.node, then message -> session hops of four levels each, then `key`
    const hops = 3;
    const hop = 'messages(first: 1) { edges { node { session { ';
    const query = `{ sessions(first: 1) { edges { node { ${hop.repeat(hops)}key${' }'.repeat(3 + 4 * hops + 1)}`;
    const recursive = await postGraphQL(s.url, query);
    expect(recursive.errors?.[0]?.extensions).toMatchObject({
      code: 'QUERY_TOO_DEEP',
      limit: 12,
      actual: 16,
    });
  });
});
