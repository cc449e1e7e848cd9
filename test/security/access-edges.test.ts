/**
 * Access beyond the matrix (access.test.ts), each through a real server: token specs and the
 * start-up refusals, a token removed from the tokens file ending its live subscriptions at their
 * next event, listings that stay full under a key prefix, the WebSocket Origin check and CORS, CSRF
 * refusals, and the per-token connection cap.
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parseTokenSpecs } from '../../src/auth/token-spec.js';
import { type Config, ConfigError, parseConfig } from '../../src/config.js';
import { encodePosition, START_POSITION } from '../../src/events/message-cursor.js';
import { createLogger } from '../../src/logger.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { CloseCode } from '../../src/transport/close-codes.js';
import { closeCodeOf, requestOnce } from '../helpers/auth-clients.js';
import { openWsClient, subscribeSse, wsUrlOf } from '../helpers/live-client.js';
import { testConfig } from '../helpers/server.js';

const ROOT = new URL('../..', import.meta.url);
const work = mkdtempSync(join(tmpdir(), 'sg-access-edges-'));
const silent = createLogger({ level: 'silent' });
let dirs = 0;

afterAll(() => rmSync(work, { recursive: true, force: true }));

async function serve(overrides: Partial<Config>): Promise<RunningServer> {
  return startServer(testConfig('sqlite', join(work, `data-${++dirs}`), overrides), { logger: silent });
}

const SECRET = 'a-long-enough-secret-1';

describe('token specs and start-up', () => {
  const parse = (values: Record<string, unknown>, fromEnv = false) =>
    parseConfig({ host: '127.0.0.1', ...values }, () => (fromEnv ? 'env' : 'cli'));

  it('parses name:secret:scopes[:prefix], keeping only a digest of the secret', () => {
    const config = parse({ token: [`ci:${SECRET}:read,write:slack/thread:1`, `ops:${SECRET}x:admin`] });
    expect(config.tokens.map((t) => [t.principal.name, [...t.principal.scopes], t.principal.prefix])).toEqual(
      [
        ['ci', ['read', 'write'], 'slack/thread:1'],
        ['ops', ['admin'], null],
      ],
    );
    expect(JSON.stringify(config)).not.toContain(SECRET);
    const hashed = parseTokenSpecs([`ci:sha256=${config.tokens[0]!.digest.toString('hex')}:read`]);
    expect(hashed[0]!.digest).toEqual(config.tokens[0]!.digest);
  });

  it('reads several specs from SESSIONGRAPH_TOKENS, separated by spaces or newlines', () => {
    const config = parse({ token: [`a:${SECRET}:read\n b:${SECRET}:write # comment`] }, true);
    expect(config.tokens.map((t) => t.principal.name)).toEqual(['a', 'b']);
  });

  it.each([
    ['a short secret', 'ci:short:read', 'the secret must be'],
    ['an unknown scope', `ci:${SECRET}:read,root`, 'scopes must be'],
    ['no scope', `ci:${SECRET}`, 'scopes must be'],
    ['a bad name', `c/i:${SECRET}:read`, 'the name must be'],
    ['admin with a prefix', `ci:${SECRET}:admin:team/`, 'admin covers every key'],
    ['an empty prefix', `ci:${SECRET}:read:`, 'must not be empty'],
  ])('refuses %s, naming the flag and never echoing the secret', (_what, spec, message) => {
    for (const fromEnv of [false, true]) {
      let error: unknown;
      try {
        parse({ token: [spec] }, fromEnv);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const text = (error as Error).message;
      expect(text).toContain(fromEnv ? 'SESSIONGRAPH_TOKENS' : '--token');
      expect(text).toContain(message);
      expect(text).not.toContain(SECRET);
    }
  });

  it('refuses a name given twice', () => {
    expect(() => parse({ token: [`ci:${SECRET}:read`, `ci:${SECRET}x:read`] })).toThrow(/used twice/);
  });

  it('refuses a non-loopback host without tokens, unless --insecure', () => {
    expect(() => parse({ host: '0.0.0.0' })).toThrow(/--host 0\.0\.0\.0: not a loopback address/);
    expect(parse({ host: '0.0.0.0', insecure: true }).insecure).toBe(true);
    expect(parse({ host: '0.0.0.0', token: [`ci:${SECRET}:read`] }).host).toBe('0.0.0.0');
    expect(parse({ host: '::1' }).host).toBe('::1');
  });

  it('exits with code 2 and says why when serve would listen beyond loopback without tokens', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--host', '0.0.0.0'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, SESSIONGRAPH_DATA: join(work, 'cli') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toContain('not a loopback address, and no token is configured');
    expect(stderr).toContain('--insecure');
  });

  it('fails the start on a tokens file it cannot read or parse', async () => {
    await expect(serve({ tokensFile: join(work, 'missing.tokens') })).rejects.toThrow(
      /--tokens-file: cannot read/,
    );
    const bad = join(work, 'bad.tokens');
    writeFileSync(bad, `ok:${SECRET}:read\nbroken-line\n`);
    await expect(serve({ tokensFile: bad })).rejects.toThrow(ConfigError);
  });

  it('says at start that it serves without tokens on loopback only', async () => {
    let logged = '';
    const logger = createLogger({
      level: 'warn',
      destination: new Writable({
        write(chunk, _encoding, done) {
          logged += chunk;
          done();
        },
      }),
    });
    const server = await startServer(testConfig('sqlite', join(work, `data-${++dirs}`)), { logger });
    await server.close();
    expect(logged).toContain('no tokens configured');
    expect(logged).toContain('loopback only');
  });
});

describe('a token removed from the tokens file', () => {
  let server: RunningServer;
  const file = join(work, 'live.tokens');
  const keep = `keep:${SECRET}:admin`;
  const gone = `gone:${SECRET}-gone:read:team/`;

  beforeAll(async () => {
    writeFileSync(file, `# tokens\n${keep}\n${gone}\n`);
    server = await serve({ tokensFile: file });
  });
  afterAll(() => server.close());

  it('ends its live subscriptions at their next event and is refused from then on', async () => {
    await server.backend.append('team/one', [{ role: 'user', content: 'hello' }]);
    const query =
      'subscription($k: String!, $a: String) { sessionEvents(sessionKey: $k, after: $a) { __typename } }';
    const variables = { k: 'team/one', a: encodePosition(START_POSITION) };
    const ws = openWsClient(server.url, { token: `${SECRET}-gone` });
    const overWs = ws.subscribe(query, variables);
    const overSse = subscribeSse(server.url, query, variables, { token: `${SECRET}-gone` });
    const kept = openWsClient(server.url, { token: SECRET });
    const admin = kept.subscribe(query, variables);
    try {
      for (const sub of [overWs, overSse, admin]) await sub.waitForEvents(1);

      writeFileSync(file, `${keep}\n`);
      server.reloadTokens();
      await server.backend.append('team/one', [{ role: 'user', content: 'after removal' }]);

      for (const sub of [overWs, overSse]) {
        await sub.waitFor((s) => s.results.some((r) => r.errors));
        expect(sub.results.at(-1)!.errors![0]!.extensions!.code).toBe('UNAUTHENTICATED');
        expect(sub.events).toHaveLength(1);
      }
      // the kept token goes on
      expect((await admin.waitForEvents(2)).map((e) => e.__typename)).toEqual([
        'MessageAppended',
        'MessageAppended',
      ]);
      // a new operation on the old socket closes it; new requests get 401
      const again = ws.subscribe(query, variables);
      await expect(again.ended).rejects.toSatisfy((e) => closeCodeOf(e) === 4403);
      expect(await requestOnce(server.url, 'http', `${SECRET}-gone`, '{ backend { kind } }')).toEqual({
        kind: 'unauthenticated',
      });
    } finally {
      for (const sub of [overWs, overSse, admin]) sub.stop();
      await ws.close();
      await kept.close();
    }
  });
});

describe('the tokens file, edited while the server runs', () => {
  it('is read again when it changes, without a signal', async () => {
    const file = join(work, 'watched.tokens');
    writeFileSync(file, `first:${SECRET}-first:read\n`);
    const server = await serve({ tokensFile: file });
    try {
      const ask = (secret: string) => requestOnce(server.url, 'http', secret, '{ backend { kind } }');
      expect((await ask(`${SECRET}-first`)).kind).toBe('result');
      expect((await ask(`${SECRET}-second`)).kind).toBe('unauthenticated');
      // replaced the way editors and deploys do it: a new file renamed over the old one
      writeFileSync(`${file}.new`, `second:${SECRET}-second:read\n`);
      renameSync(`${file}.new`, file);
      await expect.poll(async () => (await ask(`${SECRET}-second`)).kind, { timeout: 10_000 }).toBe('result');
      expect((await ask(`${SECRET}-first`)).kind).toBe('unauthenticated');
      // and edited in place
      writeFileSync(file, `second:${SECRET}-second:read\nthird:${SECRET}-third:read\n`);
      await expect.poll(async () => (await ask(`${SECRET}-third`)).kind, { timeout: 10_000 }).toBe('result');
      // a broken edit keeps the tokens that were read last
      writeFileSync(file, 'not a spec\n');
      server.reloadTokens();
      expect((await ask(`${SECRET}-second`)).kind).toBe('result');
    } finally {
      await server.close();
    }
  });
});

describe('a token past its expires=', () => {
  it('is refused, and its live subscriptions end at their first event after it expired', async () => {
    // unix seconds: the token lives for the next two seconds or so
    const expires = Math.floor(Date.now() / 1_000) + 2;
    const server = await serve({
      tokens: parseTokenSpecs([
        `brief:${SECRET}-brief:read,expires=${expires}`,
        `past:${SECRET}-past:read,expires=2020-01-01`,
      ]),
    });
    const ws = openWsClient(server.url, { token: `${SECRET}-brief` });
    try {
      expect(await requestOnce(server.url, 'http', `${SECRET}-past`, '{ backend { kind } }')).toEqual({
        kind: 'unauthenticated',
      });
      await server.backend.append('s', [{ role: 'user', content: 'x' }]);
      const query = 'subscription($a: String) { sessionEvents(sessionKey: "s", after: $a) { __typename } }';
      const variables = { a: encodePosition(START_POSITION) };
      const subs = [
        ws.subscribe(query, variables),
        subscribeSse(server.url, query, variables, { token: `${SECRET}-brief` }),
      ];
      for (const sub of subs) await sub.waitForEvents(1);
      await expect.poll(() => Date.now(), { timeout: 5_000 }).toBeGreaterThanOrEqual(expires * 1_000);
      await server.backend.append('s', [{ role: 'user', content: 'after expiry' }]);
      for (const sub of subs) {
        await sub.waitFor((s) => s.results.some((r) => r.errors));
        expect(sub.results.at(-1)!.errors![0]!.extensions!.code).toBe('UNAUTHENTICATED');
        expect(sub.events).toHaveLength(1);
      }
      expect(await requestOnce(server.url, 'http', `${SECRET}-brief`, '{ backend { kind } }')).toEqual({
        kind: 'unauthenticated',
      });
    } finally {
      await ws.close();
      await server.close();
    }
  });

  it('takes a date or unix seconds, nothing else', () => {
    expect(parseTokenSpecs([`d:${SECRET}:read,expires=2027-01-31`])[0]!.principal.expiresAt).toBe(
      Date.parse('2027-01-31T00:00:00Z'),
    );
    expect(parseTokenSpecs([`u:${SECRET}:read,expires=1800000000`])[0]!.principal.expiresAt).toBe(
      1_800_000_000_000,
    );
    expect(() => parseTokenSpecs([`x:${SECRET}:read,expires=tomorrow`])).toThrow(/expires= takes a date/);
  });
});

describe('listings under a key prefix', () => {
  let server: RunningServer;
  const token = `${SECRET}-reader`;

  beforeAll(async () => {
    server = await serve({ tokens: parseTokenSpecs([`reader:${token}:read:mine/`]) });
    // far more matching sessions outside the prefix, newer and with more matches than those inside
    for (let i = 0; i < 7; i++)
      await server.backend.append(`mine/${i}`, [{ role: 'user', content: 'apple' }]);
    for (let i = 0; i < 40; i++) {
      await server.backend.append(`other/${i}`, [{ role: 'user', content: 'apple apple apple' }]);
    }
  });
  afterAll(() => server.close());

  const pages = async (field: 'search' | 'sessions', filter: object | null) => {
    const keys: string[] = [];
    const sizes: number[] = [];
    let after: string | null = null;
    for (;;) {
      const query =
        field === 'search'
          ? `query($a: String, $f: SearchFilter) { search(query: "apple", first: 3, after: $a, filter: $f) {
               edges { node { message { sessionKey } } } pageInfo { hasNextPage endCursor } } }`
          : `query($a: String, $f: SessionFilter) { sessions(first: 3, after: $a, filter: $f) {
               edges { node { key } } pageInfo { hasNextPage endCursor } } }`;
      const reply = await requestOnce(server.url, 'http', token, query, { a: after, f: filter });
      if (reply.kind !== 'result') throw new Error('refused');
      const page = reply.result.data[field];
      const pageKeys = page.edges.map((e: { node: { key?: string; message?: { sessionKey: string } } }) =>
        field === 'search' ? e.node.message!.sessionKey : e.node.key!,
      );
      keys.push(...pageKeys);
      sizes.push(pageKeys.length);
      if (!page.pageInfo.hasNextPage) return { keys, sizes };
      after = page.pageInfo.endCursor;
    }
  };

  it.each(['search', 'sessions'] as const)(
    '%s: full pages of the prefix only, and nothing else counted',
    async (field) => {
      const { keys, sizes } = await pages(field, null);
      expect(keys.sort()).toEqual(Array.from({ length: 7 }, (_, i) => `mine/${i}`));
      expect(sizes).toEqual([3, 3, 1]);
    },
  );

  it.each(['search', 'sessions'] as const)(
    '%s: a narrower prefix narrows, a foreign one is empty',
    async (field) => {
      expect((await pages(field, { keyPrefix: 'mine/3' })).keys).toEqual(['mine/3']);
      expect((await pages(field, { keyPrefix: 'other/' })).keys).toEqual([]);
      expect((await pages(field, { keyPrefix: '' })).keys).toHaveLength(7);
    },
  );
});

describe('browser origins and CSRF', () => {
  let open: RunningServer;
  let configured: RunningServer;

  beforeAll(async () => {
    open = await serve({});
    configured = await serve({ corsOrigins: ['https://app.example'] });
  });
  afterAll(async () => {
    await open.close();
    await configured.close();
  });

  /** The upgrade's outcome: 'open', or the HTTP status of the refusal. */
  const upgrade = (url: string, origin?: string) =>
    new Promise<string | number>((resolve, reject) => {
      const socket = new WebSocket(wsUrlOf(url), 'graphql-transport-ws', origin ? { origin } : {});
      socket.once('open', () => {
        socket.close();
        resolve('open');
      });
      socket.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      socket.once('error', reject);
    });

  it('checks the WebSocket Origin: loopback pages by default, the configured list otherwise', async () => {
    expect(await upgrade(open.url)).toBe('open');
    expect(await upgrade(open.url, 'http://localhost:5173')).toBe('open');
    expect(await upgrade(open.url, 'https://evil.example')).toBe(403);
    expect(await upgrade(configured.url, 'https://app.example')).toBe('open');
    expect(await upgrade(configured.url, 'https://evil.example')).toBe(403);
    expect(await upgrade(configured.url, 'http://localhost:5173')).toBe(403);
    // the server's own pages are same-origin
    expect(await upgrade(configured.url, new URL(configured.url).origin)).toBe('open');
  });

  it('without tokens, answers only requests addressed to a loopback name (DNS rebinding)', async () => {
    const post = (server: RunningServer, host: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const request = httpRequest(
          server.url,
          { method: 'POST', headers: { host, 'content-type': 'application/json' } },
          (response) => {
            let body = '';
            response.on('data', (d) => {
              body += d;
            });
            response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
          },
        );
        request.once('error', reject);
        request.end(JSON.stringify({ query: '{ backend { kind } }' }));
      });
    const port = new URL(open.url).port;
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) {
      expect((await post(open, host)).status).toBe(200);
    }
    const rebound = await post(open, `rebound.example:${port}`);
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.body).errors[0].extensions.code).toBe('FORBIDDEN');
    const upgradeTo = (host: string) =>
      new Promise<string | number>((resolve, reject) => {
        const socket = new WebSocket(wsUrlOf(open.url), 'graphql-transport-ws', { headers: { host } });
        socket.once('open', () => {
          socket.close();
          resolve('open');
        });
        socket.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        socket.once('error', reject);
      });
    expect(await upgradeTo(`rebound.example:${port}`)).toBe(403);
    expect(await upgradeTo(`localhost:${port}`)).toBe('open');
  });

  it('answers CORS preflights for allowed origins only', async () => {
    const preflight = (origin: string) =>
      fetch(configured.url, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization',
        },
      });
    const allowed = await preflight('https://app.example');
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(allowed.headers.get('access-control-allow-headers')).toContain('authorization');
    const refused = await preflight('https://evil.example');
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
  });

  it.each([
    [
      'application/x-www-form-urlencoded',
      'query=mutation%7BrenameSession(input%3A%7BsessionKey%3A%22csrf%22%7D)%7B__typename%7D%7D',
    ],
    [
      'multipart/form-data; boundary=x',
      '--x\r\nContent-Disposition: form-data; name="query"\r\n\r\nmutation{x}\r\n--x--',
    ],
    [
      'text/plain',
      JSON.stringify({ query: 'mutation { renameSession(input: {sessionKey: "csrf"}) { __typename } }' }),
    ],
  ])('refuses a %s POST (a form another site could send) and stores nothing', async (type, body) => {
    const response = await fetch(open.url, { method: 'POST', headers: { 'content-type': type }, body });
    expect(response.status).toBe(415);
    const answer = await response.json();
    expect(answer.errors[0].message).toContain('CSRF');
    expect(answer.errors[0].extensions.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(await open.backend.session('csrf')).toBeNull();
  });

  it('never runs a mutation sent as GET', async () => {
    const query = encodeURIComponent(
      'mutation { renameSession(input: {sessionKey: "csrf-get"}) { __typename } }',
    );
    const response = await fetch(`${open.url}?query=${query}`, { headers: { accept: 'application/json' } });
    expect(response.status).toBe(405);
    expect(await open.backend.session('csrf-get')).toBeNull();
  });
});

describe('live connections per token', () => {
  let server: RunningServer;
  const token = `${SECRET}-capped`;

  beforeAll(async () => {
    server = await serve({ tokens: parseTokenSpecs([`capped:${token}:read`]), maxConnectionsPerToken: 2 });
    await server.backend.append('s', [{ role: 'user', content: 'x' }]);
  });
  afterAll(() => server.close());

  const query = 'subscription($a: String) { sessionEvents(sessionKey: "s", after: $a) { __typename } }';
  const variables = { a: encodePosition(START_POSITION) };

  it('closes one WebSocket too many with TooManyConnections, and refuses one SSE stream too many with TOO_LARGE', async () => {
    const first = openWsClient(server.url, { token });
    const second = openWsClient(server.url, { token });
    const third = openWsClient(server.url, { token });
    try {
      const held = [first.subscribe(query, variables), second.subscribe(query, variables)];
      for (const sub of held) await sub.waitForEvents(1);
      const refused = third.subscribe(query, variables);
      await expect(refused.ended).rejects.toSatisfy((e) => closeCodeOf(e) === CloseCode.TooManyConnections);

      const stream = subscribeSse(server.url, query, variables, { token });
      await stream.waitFor((s) => s.results.length > 0);
      expect(stream.results[0]!.errors![0]!.extensions).toMatchObject({
        code: 'TOO_LARGE',
        field: 'connections',
        limit: 2,
      });

      // a closed socket gives its slot back
      await first.close();
      await expect
        .poll(async () => {
          const retry = subscribeSse(server.url, query, variables, { token });
          await retry.waitFor((s) => s.results.length > 0);
          retry.stop();
          return retry.results[0]!.errors === undefined;
        })
        .toBe(true);
    } finally {
      await second.close();
      await third.close();
    }
  });
});

describe('sessiongraph tail with a token', () => {
  let server: RunningServer;
  const token = `${SECRET}-tail`;

  beforeAll(async () => {
    server = await serve({ tokens: parseTokenSpecs([`tail:${token}:read:team/`]) });
    await server.backend.append('team/t', [{ role: 'user', content: 'tailed message' }]);
  });
  afterAll(() => server.close());

  const tail = (env: Record<string, string>, args: string[] = []) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', 'tail', 'team/t', '--json', '--url', server.url, ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    return { child, exited, stdout: () => stdout, stderr: () => stderr };
  };

  it('follows with SESSIONGRAPH_TOKEN or --token, and says what is wrong without one', async () => {
    // all at once: each is a child process that takes a while to start
    const following = [tail({ SESSIONGRAPH_TOKEN: token }), tail({}, ['--token', token])];
    const refused = tail({});
    const wrong = tail({ SESSIONGRAPH_TOKEN: 'wrong-token-0123456789' });
    for (const run of following) {
      await expect.poll(run.stdout, { timeout: 20_000 }).toContain('tailed message');
      run.child.kill('SIGTERM');
      expect(await run.exited).toBe(0);
    }
    expect(await refused.exited).toBe(1);
    expect(refused.stderr()).toContain('the server requires a token');
    expect(await wrong.exited).toBe(1);
    expect(wrong.stderr()).toContain('the server refused the token');
  });
});
