/**
 * The request gate (src/transport/request-gate.ts) from the outside, as an attacker would try it:
 * raw HTTP requests (node:http with the request target sent as written, so `//graphql` or
 * `/%67raphql` reach the server unnormalised) and raw WebSocket upgrades against real servers,
 * with and without tokens. Tables enumerate path spellings, methods and content types against
 * every guard (Host rebinding, hostile Origin, missing or bad token) over HTTP, server-sent events
 * (POST and GET) and graphql-ws upgrades; every refusal must carry its status and stable code,
 * and no refused request may return data or change anything. Each finding of issue 11 this gate
 * fixes (1, 2, 3, 5) has its curl reproduced as its own test.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parseTokenSpecs } from '../../src/auth/token-spec.js';
import { type Config, ConfigError } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { closeCodeOf } from '../helpers/auth-clients.js';
import { openWsClient, wsUrlOf } from '../helpers/live-client.js';
import { parseMetrics } from '../helpers/prometheus.js';
import { parseServeArgs } from '../helpers/serve-config.js';
import { type Json, testConfig } from '../helpers/server.js';

const work = mkdtempSync(join(tmpdir(), 'sg-gate-'));
const silent = createLogger({ level: 'silent' });
let dirs = 0;

async function serve(overrides: Partial<Config>): Promise<RunningServer> {
  return startServer(testConfig('sqlite', join(work, `data-${++dirs}`), overrides), { logger: silent });
}

const ADMIN = 'gate-admin-secret-0001';
const READER = 'gate-reader-secret-0001';
const METRICS = 'gate-metrics-secret-0001';
const KEY = 'telegram_1_alice';
const READ = '{ sessions(first: 5) { edges { node { key lastMessage { content } } } } }';
const SECRET_TEXT = 'the secret plan';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * One HTTP request with the target sent exactly as given. A server-sent event stream is read up to
 * its first complete event, then dropped: a stream that leaks data says so at once.
 */
function send(
  server: RunningServer,
  target: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  const { port } = server;
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: init.method ?? 'GET',
        path: target,
        headers: { host: `127.0.0.1:${port}`, ...init.headers },
        setHost: false,
      },
      (response) => {
        let body = '';
        const done = () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body });
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          body += chunk;
          if (/event: next\ndata: .*\n\n/.test(body)) {
            response.destroy();
            done();
          }
        });
        response.once('end', done);
        response.once('error', () => done());
      },
    );
    request.once('error', reject);
    request.end(init.body);
  });
}

/** The `extensions.code` of a refusal's first error (and that the body is the JSON error shape). */
function codeOf(answer: Answer): string {
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  const parsed = JSON.parse(answer.body) as { data?: unknown; errors: Array<{ extensions: Json }> };
  expect(parsed.data).toBeUndefined();
  return parsed.errors[0]!.extensions.code as string;
}

/** The outcome of a raw WebSocket upgrade: 101, or the refusal's status, code and headers. */
function upgrade(
  server: RunningServer,
  target: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; code?: string }> {
  const { port } = server;
  return new Promise((resolve, reject) => {
    const request = httpRequest({
      host: '127.0.0.1',
      port,
      path: target,
      setHost: false,
      headers: {
        host: `127.0.0.1:${port}`,
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-version': '13',
        'sec-websocket-protocol': 'graphql-transport-ws',
        ...headers,
      },
    });
    request.once('upgrade', (response, socket) => {
      socket.destroy();
      resolve({ status: response.statusCode ?? 0 });
    });
    request.once('response', (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.once('end', () => {
        let code: string | undefined;
        try {
          code = (JSON.parse(body) as { errors: Array<{ extensions: Json }> }).errors[0]!.extensions.code;
        } catch {
          code = undefined;
        }
        resolve({ status: response.statusCode ?? 0, ...(code !== undefined && { code }) });
      });
    });
    request.once('error', reject);
    request.end();
  });
}

const json = { 'content-type': 'application/json' };
const postJson = (query: string) => ({ method: 'POST', headers: json, body: JSON.stringify({ query }) });
const withQuery = (target: string, query: string) =>
  `${target}${target.includes('?') ? '&' : '?'}query=${encodeURIComponent(query)}`;

/** The ways an operation reaches the endpoint over HTTP: plain, and as server-sent events. */
const TRANSPORTS: Record<
  string,
  (
    target: string,
    query: string,
  ) => { target: string; method?: string; headers: Record<string, string>; body?: string }
> = {
  'GET json': (target, query) => ({
    target: withQuery(target, query),
    headers: { accept: 'application/json' },
  }),
  'POST json': (target, query) => ({ target, ...postJson(query) }),
  'POST sse': (target, query) => ({
    target,
    ...postJson(query),
    headers: { ...json, accept: 'text/event-stream' },
  }),
  'GET sse': (target, query) => ({
    target: withQuery(target, query),
    headers: { accept: 'text/event-stream' },
  }),
};

/** Spellings of the endpoint that yoga answered (or could) and the gate must not. */
const PATH_VARIANTS = [
  '/graphql/',
  '/x/graphql',
  '/x/graphql/',
  '//graphql',
  '/GRAPHQL',
  '/Graphql',
  '/%67raphql',
  '/graphql%2F',
  '/graphql/..',
  '/graphql/.',
  '/x/../graphql',
  '/./graphql',
  '/graphql;x',
  '/health/graphql',
  '/graphql/graphql',
  // yoga's route checks test the whole URL's text: a query string ending in /graphql made any path the endpoint
  '/health?x=/graphql',
  '/ui/?x=/graphql',
  '/nowhere?x=/graphql/',
  'http://rebind.example/graphql',
];

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the request gate without tokens (loopback only)', () => {
  let open: RunningServer;
  let production: RunningServer;

  beforeAll(async () => {
    open = await serve({});
    production = await serve({ production: true, ui: false, metrics: false });
    await open.backend.append(KEY, [{ role: 'user', content: SECRET_TEXT }]);
  });
  afterAll(async () => {
    await open.close();
    await production.close();
  });

  it('finding 1: a rebound Host name on /graphql/ is refused, over HTTP and SSE', async () => {
    // curl http://127.0.0.1:PORT/graphql/ -H 'Host: rebind.attacker.example:4000' -H 'content-type: application/json' -d '{"query":...}'
    const host = { host: 'rebind.attacker.example:4000' };
    const http = await send(open, '/graphql/', {
      ...postJson(READ),
      headers: { ...json, ...host },
    });
    expect(http.status).toBe(403);
    expect(codeOf(http)).toBe('FORBIDDEN');
    expect(http.body).not.toContain(SECRET_TEXT);
    const replay = `subscription { sessionEvents(sessionKey: "${KEY}", fromStart: true) { __typename ... on MessageAppended { content } } }`;
    const sse = await send(open, '/graphql/', {
      ...postJson(replay),
      headers: { ...json, ...host, accept: 'text/event-stream' },
    });
    expect(sse.status).toBe(403);
    expect(sse.body).not.toContain(SECRET_TEXT);
    const get = await send(open, withQuery('/graphql/', READ), {
      headers: { ...host, accept: 'application/json' },
    });
    expect(get.status).toBe(403);
    expect(get.body).not.toContain(SECRET_TEXT);
  });

  it('finding 2: a form post from another site on /graphql/ deletes nothing', async () => {
    // curl http://127.0.0.1:PORT/graphql/ -H 'Origin: https://evil.example' --data-urlencode 'query=mutation{deleteSession(...)}'
    const form = `query=${encodeURIComponent(`mutation{deleteSession(input:{sessionKey:"${KEY}"}){__typename}}`)}`;
    for (const target of ['/graphql/', '/graphql', '/x/graphql']) {
      for (const origin of [{ origin: 'https://evil.example' }, {}] as Array<Record<string, string>>) {
        const answer = await send(open, target, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...origin },
          body: form,
        });
        expect(await open.backend.session(KEY)).not.toBeNull();
        expect([403, 404, 415]).toContain(answer.status);
      }
    }
  });

  it.each(PATH_VARIANTS)(
    'refuses %s with 404 NOT_FOUND on every transport, and never answers data',
    async (variant) => {
      for (const [name, make] of Object.entries(TRANSPORTS)) {
        const r = make(variant, READ);
        const answer = await send(open, r.target, r);
        expect({ name, status: answer.status }).toEqual({ name, status: 404 });
        expect(codeOf(answer)).toBe('NOT_FOUND');
        expect(answer.body).not.toContain(SECRET_TEXT);
      }
    },
  );

  it.each(PATH_VARIANTS)(
    'refuses %s with a rebound Host (403) or a hostile Origin (403) first',
    async (variant) => {
      for (const headers of [{ host: 'rebind.example:4000' }, { origin: 'https://evil.example' }] as Array<
        Record<string, string>
      >) {
        const r = TRANSPORTS['POST json']!(variant, READ);
        const answer = await send(open, r.target, { ...r, headers: { ...r.headers, ...headers } });
        expect(answer.status).toBe(403);
        expect(codeOf(answer)).toBe('FORBIDDEN');
      }
    },
  );

  it('answers the exact endpoint on every transport, to loopback names and allowed origins', async () => {
    const port = open.port;
    const guards: Array<Record<string, string>> = [
      {},
      { host: `localhost:${port}` },
      { host: `[::1]:${port}` },
      { origin: 'http://localhost:5173' },
      { origin: `http://127.0.0.1:${port}` },
    ];
    for (const [name, make] of Object.entries(TRANSPORTS)) {
      for (const guard of guards) {
        const r = make('/graphql', '{ backend { kind } }');
        const answer = await send(open, r.target, { ...r, headers: { ...r.headers, ...guard } });
        expect({ name, guard, status: answer.status }).toEqual({ name, guard, status: 200 });
        expect(answer.body).toContain('SQLITE');
      }
    }
  });

  it('refuses a rebound Host or a hostile Origin on the exact endpoint, for every method and transport', async () => {
    const guards: Array<Record<string, string>> = [
      { host: 'rebind.example' },
      { host: `rebind.example:${open.port}` },
      { host: 'localhost.rebind.example' },
      { host: '127.0.0.1.rebind.example' },
      { origin: 'https://evil.example' },
      { origin: 'null' },
      { origin: 'http://localhost.evil.example' },
    ];
    for (const guard of guards) {
      for (const [name, make] of Object.entries(TRANSPORTS)) {
        const r = make('/graphql', READ);
        const answer = await send(open, r.target, { ...r, headers: { ...r.headers, ...guard } });
        expect({ name, guard, status: answer.status }).toEqual({ name, guard, status: 403 });
        expect(codeOf(answer)).toBe('FORBIDDEN');
        expect(answer.body).not.toContain(SECRET_TEXT);
      }
      for (const method of ['OPTIONS', 'PUT', 'DELETE']) {
        const answer = await send(open, '/graphql', { method, headers: guard });
        expect({ method, guard, status: answer.status }).toEqual({ method, guard, status: 403 });
      }
    }
    // a Host that is not a plain host (userinfo, empty) is refused before its name is looked at
    for (const host of ['localhost@rebind.example', '']) {
      const odd = await send(open, '/graphql', {
        ...postJson('{ backend { kind } }'),
        headers: { ...json, host },
      });
      expect({ host, status: odd.status }).toEqual({ host, status: 400 });
      expect(codeOf(odd)).toBe('BAD_REQUEST');
    }
  });

  it.each([['PUT'], ['DELETE'], ['PATCH'], ['HEAD'], ['TRACE']])(
    'refuses %s on the endpoint with 405 and an Allow header',
    async (method) => {
      const answer = await send(open, '/graphql', {
        method,
        headers: json,
        ...(method !== 'HEAD' && method !== 'TRACE' && { body: JSON.stringify({ query: READ }) }),
      });
      expect(answer.status).toBe(405);
      expect(answer.headers.allow).toBe('GET, POST, OPTIONS');
      if (method !== 'HEAD') expect(codeOf(answer)).toBe('METHOD_NOT_ALLOWED');
    },
  );

  it.each([
    ['application/x-www-form-urlencoded', `query=${encodeURIComponent('{ backend { kind } }')}`],
    [
      'multipart/form-data; boundary=x',
      '--x\r\nContent-Disposition: form-data; name="query"\r\n\r\n{ backend { kind } }\r\n--x--',
    ],
    ['text/plain', JSON.stringify({ query: '{ backend { kind } }' })],
    ['text/plain; charset=utf-8', JSON.stringify({ query: '{ backend { kind } }' })],
    ['application/graphql', '{ backend { kind } }'],
    ['application/graphql+json', JSON.stringify({ query: '{ backend { kind } }' })],
    ['application/graphql-response+json', JSON.stringify({ query: '{ backend { kind } }' })],
    ['application/json; charset=latin1', JSON.stringify({ query: '{ backend { kind } }' })],
    ['application/jsonx', JSON.stringify({ query: '{ backend { kind } }' })],
    // not the spelling yoga's parser reads
    ['Application/JSON', JSON.stringify({ query: '{ backend { kind } }' })],
    ['application/json ;charset=utf-8', JSON.stringify({ query: '{ backend { kind } }' })],
    ['application/json, text/plain', JSON.stringify({ query: '{ backend { kind } }' })],
    [undefined, JSON.stringify({ query: '{ backend { kind } }' })],
  ])('refuses a POST of %s with 415 UNSUPPORTED_MEDIA_TYPE', async (type, body) => {
    for (const accept of ['application/json', 'text/event-stream']) {
      const answer = await send(open, '/graphql', {
        method: 'POST',
        headers: { accept, ...(type !== undefined && { 'content-type': type }) },
        body,
      });
      expect(answer.status).toBe(415);
      expect(codeOf(answer)).toBe('UNSUPPORTED_MEDIA_TYPE');
      expect(answer.body).not.toContain('SQLITE');
    }
  });

  it('takes application/json with or without a UTF-8 charset, and answers application/graphql-response+json', async () => {
    for (const type of [
      'application/json',
      'application/json; charset=utf-8',
      'application/json;charset="UTF-8"',
    ]) {
      const answer = await send(open, '/graphql', {
        method: 'POST',
        headers: { 'content-type': type },
        body: JSON.stringify({ query: '{ backend { kind } }' }),
      });
      expect({ type, status: answer.status }).toEqual({ type, status: 200 });
    }
    const spec = await send(open, '/graphql', {
      ...postJson('{ backend { kind } }'),
      headers: { ...json, accept: 'application/graphql-response+json' },
    });
    expect(spec.status).toBe(200);
    expect(spec.headers['content-type']).toMatch(/^application\/graphql-response\+json/);
    expect(JSON.parse(spec.body).data.backend.kind).toBe('SQLITE');
  });

  it('reads a query string only on GET: a POST carrying one is 400 BAD_REQUEST', async () => {
    const answer = await send(
      open,
      withQuery('/graphql', '{ backend { kind } }'),
      postJson('{ backend { kind } }'),
    );
    expect(answer.status).toBe(400);
    expect(codeOf(answer)).toBe('BAD_REQUEST');
  });

  it('answers CORS preflights on the endpoint only', async () => {
    const preflight = { origin: 'http://localhost:5173', 'access-control-request-method': 'POST' };
    const ok = await send(open, '/graphql', { method: 'OPTIONS', headers: preflight });
    expect(ok.status).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe('http://localhost:5173');
    for (const target of ['/graphql/', '/x/graphql', '/nowhere']) {
      const elsewhere = await send(open, target, { method: 'OPTIONS', headers: preflight });
      expect(elsewhere.status).toBe(404);
    }
    const health = await send(open, '/health', { method: 'OPTIONS', headers: preflight });
    expect(health.status).toBe(405);
  });

  it('serves GraphiQL, the dashboard, health and metrics on their exact paths, GET and HEAD only', async () => {
    const page = await send(open, '/graphql', { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(page.body).toContain('sessiongraph');
    const served: Array<[string, number]> = [
      ['/health', 200],
      ['/ready', 200],
      ['/metrics', 200],
      ['/', 302],
      ['/ui', 302],
      ['/ui/', 200],
      ['/ui/app.js', 200],
      ['/ui/app.css', 200],
      ['/ui/nothing.js', 404],
    ];
    for (const [target, status] of served) {
      for (const method of ['GET', 'HEAD']) {
        const answer = await send(open, target, { method });
        expect({ target, method, status: answer.status }).toEqual({ target, method, status });
      }
      for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
        const answer = await send(open, target, { method, headers: json, body: '{}' });
        expect({ target, method, status: answer.status }).toEqual({ target, method, status: 405 });
        expect(answer.headers.allow).toBe('GET, HEAD');
        expect(codeOf(answer)).toBe('METHOD_NOT_ALLOWED');
      }
      const rebound = await send(open, target, { headers: { host: 'rebind.example' } });
      expect({ target, status: rebound.status }).toEqual({ target, status: 403 });
      const hostile = await send(open, target, { headers: { origin: 'https://evil.example' } });
      expect({ target, status: hostile.status }).toEqual({ target, status: 403 });
    }
    // the dashboard's versioned asset URLs keep working; nothing else rides on a query string
    const script = await send(open, '/ui/app.js?v=0123456789abcdef');
    expect(script.status).toBe(200);
    for (const target of [
      '/health?x=1',
      '/ready?',
      '/metrics?x',
      '/ui/?x=1',
      '/ui/..',
      '/ui/.hidden',
      '/healthz',
    ]) {
      const answer = await send(open, target);
      expect({ target, status: answer.status }).toEqual({ target, status: 404 });
      expect(codeOf(answer)).toBe('NOT_FOUND');
    }
  });

  it('refuses GET of GraphiQL, the dashboard and /metrics where they are turned off', async () => {
    const page = await send(production, '/graphql', { headers: { accept: 'text/html' } });
    // no GraphiQL in production: an HTML GET is an ordinary GET, without a query
    expect(page.body).not.toContain('<html');
    for (const target of ['/', '/ui/', '/ui/app.js', '/metrics']) {
      const answer = await send(production, target);
      expect({ target, status: answer.status }).toEqual({ target, status: 404 });
    }
  });

  it('takes WebSocket upgrades on the exact endpoint only, from loopback names and allowed origins', async () => {
    expect(await upgrade(open, '/graphql')).toEqual({ status: 101 });
    expect(await upgrade(open, '/graphql?x=1')).toEqual({ status: 101 });
    expect(await upgrade(open, '/graphql', { origin: 'http://localhost:5173' })).toEqual({ status: 101 });
    for (const variant of [...PATH_VARIANTS, '/health', '/ui/', '/metrics', '/']) {
      expect({ variant, ...(await upgrade(open, variant)) }).toEqual({
        variant,
        status: 404,
        code: 'NOT_FOUND',
      });
    }
    for (const target of ['/graphql', '/graphql/', '/x/graphql']) {
      for (const headers of [
        { host: 'rebind.example' },
        { origin: 'https://evil.example' },
        { origin: 'null' },
      ] as Array<Record<string, string>>) {
        expect({ target, headers, ...(await upgrade(open, target, headers)) }).toEqual({
          target,
          headers,
          status: 403,
          code: 'FORBIDDEN',
        });
      }
    }
  });
});

describe('the request gate with tokens', () => {
  let server: RunningServer;
  let metered: RunningServer;
  const admin = { authorization: `Bearer ${ADMIN}` };
  const reader = { authorization: `Bearer ${READER}` };

  beforeAll(async () => {
    server = await serve({
      tokens: parseTokenSpecs([`ops:${ADMIN}:admin`, `reader:${READER}:read:team_`]),
      metricsMaxOperationNames: 3,
    });
    metered = await serve({ metricsToken: parseTokenSpecs([`m:${METRICS}:read`])[0]!.digest });
    await server.backend.append(KEY, [{ role: 'user', content: SECRET_TEXT }]);
  });
  afterAll(async () => {
    await server.close();
    await metered.close();
  });

  it('finding 3: an unauthenticated POST /graphql/ is refused with 401 before anything parses', async () => {
    // curl http://127.0.0.1:PORT/graphql/ -H 'content-type: application/json' -d '{"query":"{ backend { kind } }"}'
    const answer = await send(server, '/graphql/', postJson('{ backend { kind } }'));
    expect(answer.status).toBe(401);
    expect(codeOf(answer)).toBe('UNAUTHENTICATED');
    expect(answer.headers['www-authenticate']).toBe('Bearer');
    // a body that does not even parse: refused for the token, not for the body
    const garbage = await send(server, '/graphql', { method: 'POST', headers: json, body: '{not json' });
    expect(garbage.status).toBe(401);
  });

  // yoga's adapter routes on `http://` + Host + target: a Host with a path or query in it would
  // move a request the gate judged by its target (found by review after the gate landed)
  const HOST_TRICKS = [
    ['x/metrics?', '/graphql?a', { accept: 'text/html' }],
    ['x/metrics?', '/graphql', reader],
    ['x/graphql?query=%7Bbackend%7Bkind%7D%7D&', '/', {}],
    ['x/graphql?query=%7Bbackend%7Bkind%7D%7D&', '/ui/app.js?v=00', {}],
    ['evil.example@127.0.0.1', '/graphql?query=%7Bbackend%7Bkind%7D%7D', admin],
    ['127.0.0.1#x', '/health', {}],
    ['', '/health', {}],
  ] as const;

  it.each(HOST_TRICKS)(
    'refuses Host %j on %s with 400 before any route answers',
    async (host, target, headers) => {
      const answer = await send(server, target, { headers: { ...headers, host } });
      expect(answer.status).toBe(400);
      expect(codeOf(answer)).toBe('BAD_REQUEST');
      expect(answer.body).not.toContain('# HELP');
      expect((await upgrade(server, '/graphql', { ...headers, host })).status).toBe(400);
    },
  );

  it('refuses a Host with a path to /metrics even with the metrics token set and no API tokens', async () => {
    const answer = await send(metered, '/graphql', { headers: { host: 'localhost/metrics?' } });
    expect(answer.status).toBe(400);
    expect(answer.body).not.toContain('# HELP');
    // its neighbours, plain hosts with and without a port, still pass the Host check
    for (const host of ['localhost', `localhost:${metered.port}`, `[::1]:${metered.port}`, '127.0.0.1']) {
      expect((await send(metered, '/health', { headers: { host } })).status, host).toBe(200);
    }
  });

  it.each(PATH_VARIANTS)(
    'answers %s with 401 without a token and 404 with one, on every transport',
    async (variant) => {
      for (const [name, make] of Object.entries(TRANSPORTS)) {
        const r = make(variant, READ);
        for (const [who, headers, status, code] of [
          ['nobody', {}, 401, 'UNAUTHENTICATED'],
          ['a bad token', { authorization: 'Bearer not-a-token-0123456789' }, 401, 'UNAUTHENTICATED'],
          ['a malformed header', { authorization: 'Basic Zm9vOmJhcg==' }, 401, 'UNAUTHENTICATED'],
          ['admin', admin, 404, 'NOT_FOUND'],
        ] as const) {
          const answer = await send(server, r.target, { ...r, headers: { ...r.headers, ...headers } });
          expect({ name, who, status: answer.status }).toEqual({ name, who, status });
          expect(codeOf(answer)).toBe(code);
          expect(answer.body).not.toContain(SECRET_TEXT);
        }
      }
    },
  );

  it('asks every transport on the exact endpoint for a token before running anything', async () => {
    for (const [name, make] of Object.entries(TRANSPORTS)) {
      const r = make('/graphql', '{ backend { kind } }');
      const none = await send(server, r.target, r);
      expect({ name, status: none.status }).toEqual({ name, status: 401 });
      expect(codeOf(none)).toBe('UNAUTHENTICATED');
      const bad = await send(server, r.target, {
        ...r,
        headers: { ...r.headers, authorization: 'Bearer nope-nope-nope-nope' },
      });
      expect(bad.status).toBe(401);
      const ok = await send(server, r.target, { ...r, headers: { ...r.headers, ...admin } });
      expect({ name, status: ok.status }).toEqual({ name, status: 200 });
      expect(ok.body).toContain('SQLITE');
      // tokens guard every Host name: a proxy may forward its own
      const proxied = await send(server, r.target, {
        ...r,
        headers: { ...r.headers, ...admin, host: 'api.example' },
      });
      expect({ name, status: proxied.status }).toEqual({ name, status: 200 });
      // a hostile Origin is refused even with a token: a page may not spend a token it holds
      const hostile = await send(server, r.target, {
        ...r,
        headers: { ...r.headers, ...admin, origin: 'https://evil.example' },
      });
      expect({ name, status: hostile.status }).toEqual({ name, status: 403 });
    }
  });

  it('checks the token before the method and the content type, and both after it', async () => {
    for (const method of ['PUT', 'DELETE', 'PATCH']) {
      expect((await send(server, '/graphql', { method })).status).toBe(401);
      const answer = await send(server, '/graphql', { method, headers: admin });
      expect(answer.status).toBe(405);
      expect(answer.headers.allow).toBe('GET, POST, OPTIONS');
    }
    for (const type of [
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'text/plain',
    ]) {
      const body = 'query=%7B%7D';
      expect(
        (await send(server, '/graphql', { method: 'POST', headers: { 'content-type': type }, body })).status,
      ).toBe(401);
      const answer = await send(server, '/graphql', {
        method: 'POST',
        headers: { 'content-type': type, ...admin },
        body,
      });
      expect(answer.status).toBe(415);
      expect(codeOf(answer)).toBe('UNSUPPORTED_MEDIA_TYPE');
    }
  });

  it('keeps its public routes public: health, readiness, the dashboard, GraphiQL and preflights', async () => {
    for (const [target, status] of [
      ['/health', 200],
      ['/ready', 200],
      ['/ui/', 200],
      ['/', 302],
    ] as const) {
      expect({ target, status: (await send(server, target)).status }).toEqual({ target, status });
    }
    const page = await send(server, '/graphql', { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    // GraphiQL's page runs nothing: the query string is not executed
    const withQueryString = await send(server, withQuery('/graphql', READ), {
      headers: { accept: 'text/html' },
    });
    expect(withQueryString.body).not.toContain(SECRET_TEXT);
    const preflight = await send(server, '/graphql', {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(204);
  });

  it('finding 5: /metrics needs an admin token (401 without a token, 403 without admin)', async () => {
    // curl http://127.0.0.1:PORT/metrics
    const none = await send(server, '/metrics');
    expect(none.status).toBe(401);
    expect(codeOf(none)).toBe('UNAUTHENTICATED');
    expect(none.body).not.toContain('sessiongraph_');
    const read = await send(server, '/metrics', { headers: reader });
    expect(read.status).toBe(403);
    expect(codeOf(read)).toBe('FORBIDDEN');
    const ok = await send(server, '/metrics', { headers: admin });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('sessiongraph_');
    // the metrics token is not an API token
    expect((await send(server, '/metrics', { headers: { authorization: `Bearer ${METRICS}` } })).status).toBe(
      401,
    );
  });

  it('finding 5: --metrics-token guards /metrics even without API tokens, and opens nothing else', async () => {
    expect((await send(metered, '/metrics')).status).toBe(401);
    expect(
      (await send(metered, '/metrics', { headers: { authorization: 'Bearer wrong-wrong-wrong-wrong' } }))
        .status,
    ).toBe(401);
    const ok = await send(metered, '/metrics', { headers: { authorization: `Bearer ${METRICS}` } });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('sessiongraph_');
    // the API itself stays as it was: open on loopback
    expect((await send(metered, '/graphql', postJson('{ backend { kind } }'))).status).toBe(200);
  });

  it('finding 5: metric labels take only the first N operation names that name an operation, the rest `other`', async () => {
    const run = (query: string, operationName?: string) =>
      send(server, '/graphql', {
        method: 'POST',
        headers: { ...json, ...admin },
        body: JSON.stringify({ query, ...(operationName !== undefined && { operationName }) }),
      });
    // a name the document does not hold (any string, of any length) never becomes a label
    const long = `Q${'x'.repeat(10_000)}`;
    await run('query A { backend { kind } }', long);
    await run('query B { backend { kind } }', 'tenant-secret name with spaces');
    await run(`query ${long} { backend { kind } }`);
    // four real names: the cap (3) keeps the first three
    for (const name of ['One', 'Two', 'Three', 'Four', 'Five'])
      await run(`query ${name} { backend { kind } }`);
    const scraped = await send(server, '/metrics', { headers: admin });
    const names = new Set<string>();
    for (const key of parseMetrics(scraped.body).keys()) {
      const match = /operationName="((?:[^"\\]|\\.)*)"/.exec(key);
      if (match) names.add(JSON.parse(`"${match[1]}"`) as string);
    }
    // `Anonymous` is fixed: it stands for a request whose operation was not found
    names.delete('Anonymous');
    expect([...names].sort()).toEqual(['One', 'Three', 'Two', 'other'].sort());
    expect(scraped.body).not.toContain('xxxxxxxx');
    expect(scraped.body).not.toContain('tenant-secret');
  });

  it('puts graphql-ws upgrades through the same gate, and the token through connection_init', async () => {
    // a browser cannot set headers on a WebSocket: the token comes in connection_init
    expect(await upgrade(server, '/graphql')).toEqual({ status: 101 });
    expect(await upgrade(server, '/graphql', admin)).toEqual({ status: 101 });
    expect(await upgrade(server, '/graphql', { authorization: 'Bearer not-a-token-0123456789' })).toEqual({
      status: 401,
      code: 'UNAUTHENTICATED',
    });
    for (const variant of ['/graphql/', '/x/graphql', '//graphql', '/GRAPHQL', '/%67raphql', '/health']) {
      expect({ variant, ...(await upgrade(server, variant, admin)) }).toEqual({
        variant,
        status: 404,
        code: 'NOT_FOUND',
      });
    }
    expect(await upgrade(server, '/graphql', { origin: 'https://evil.example' })).toEqual({
      status: 403,
      code: 'FORBIDDEN',
    });

    // no token in connection_init: closed with 4403 before anything runs
    const anonymous = openWsClient(server.url);
    const error = await anonymous.subscribe('{ backend { kind } }').ended.catch((e: unknown) => e);
    expect(closeCodeOf(error)).toBe(4403);
    await anonymous.close();
    const known = openWsClient(server.url, { token: ADMIN });
    const run = known.subscribe('{ backend { kind } }');
    await run.ended;
    expect(run.events).toEqual([{ kind: 'SQLITE' }]);
    await known.close();
    // a real client's socket to a wrong path never opens
    const socket = new WebSocket(`${wsUrlOf(server.url)}/`, 'graphql-transport-ws');
    const status = await new Promise<number>((resolve, reject) => {
      socket.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      socket.once('open', () => reject(new Error('opened')));
      socket.once('error', reject);
    });
    expect(status).toBe(404);
  });
});

describe('the /metrics settings', () => {
  it('keeps only a digest of --metrics-token, takes sha256=<hex>, and never echoes a refused secret', () => {
    const plain = parseServeArgs(['--metrics-token', METRICS]);
    expect(plain.metricsToken?.toString('hex')).toBe(
      parseTokenSpecs([`m:${METRICS}:read`])[0]!.digest.toString('hex'),
    );
    expect(JSON.stringify(plain)).not.toContain(METRICS);
    const hex = 'ab'.repeat(32);
    expect(
      parseServeArgs([], { SESSIONGRAPH_METRICS_TOKEN: `sha256=${hex}` }).metricsToken?.toString('hex'),
    ).toBe(hex);
    expect(parseServeArgs([]).metricsToken).toBeNull();
    const short = 'too-short';
    expect(() => parseServeArgs(['--metrics-token', short])).toThrow(ConfigError);
    try {
      parseServeArgs(['--metrics-token', short]);
    } catch (err) {
      expect((err as Error).message).toContain('--metrics-token');
      expect((err as Error).message).not.toContain(short);
    }
  });

  it('bounds the operation names kept as labels: 100 by default, 0 to 10,000', () => {
    expect(parseServeArgs([]).metricsMaxOperationNames).toBe(100);
    expect(parseServeArgs(['--metrics-max-operation-names', '7']).metricsMaxOperationNames).toBe(7);
    expect(
      parseServeArgs([], { SESSIONGRAPH_METRICS_MAX_OPERATION_NAMES: '0' }).metricsMaxOperationNames,
    ).toBe(0);
    expect(() => parseServeArgs(['--metrics-max-operation-names', '10001'])).toThrow(ConfigError);
    expect(() => parseServeArgs(['--metrics-max-operation-names', '-1'])).toThrow(ConfigError);
  });
});
