/**
 * What access control costs: `npx tsx bench/auth.bench.ts [--quick]`.
 *
 * - Token lookup in-process: hashing the presented secret and comparing it, in constant time,
 *   with every configured digest (src/auth/find-token.ts), for 1, 100 and 1,000 tokens.
 * - A read over HTTP on the real `sessiongraph serve` (SQLite, a child process): the last 50
 *   messages of a 200-message session, on a server without tokens and on one where the caller's
 *   token is confined to a key prefix (bearer check, scoped backend view). Rounds interleave the
 *   two; each figure is the median. Server CPU per request is the steadier figure on a shared
 *   machine. Every response is checked.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findToken } from '../src/auth/find-token.js';
import { parseTokenSpecs } from '../src/auth/token-spec.js';
import { loadGraphQL } from './lib/graphql-load.js';
import { cpuMicros, spawnServer, stopServers } from './lib/server-child.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 1 : 5;
const DURATION_S = quick ? 2 : 4;
const CONNECTIONS = 50;
const SECRET = 'bench-secret-0123456789abcdef';
const KEY = 'team-a/history';

const LAST_50 = `query Last50($key: String!) { session(key: $key) { messageCount
  messages(last: 50) { edges { node { seq role content } } } } }`;

function lookupMicros(count: number): number {
  const entries = parseTokenSpecs(Array.from({ length: count }, (_, i) => `t${i}:${SECRET}${i}:read`));
  const secret = `${SECRET}${count - 1}`;
  const iterations = Math.max(2_000, Math.floor(200_000 / count));
  for (let i = 0; i < 1_000; i++) findToken(entries, secret);
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    if (!findToken(entries, secret)) throw new Error('token not found');
  }
  return Number(process.hrtime.bigint() - start) / 1_000 / iterations;
}

async function seed(url: string, token?: string): Promise<void> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) },
    body: JSON.stringify({
      query: `mutation($input: AppendMessagesInput!) { appendMessages(input: $input) { __typename } }`,
      variables: {
        input: {
          sessionKey: KEY,
          messages: Array.from({ length: 200 }, (_, i) => ({
            role: 'user',
            content: `history ${i} `.repeat(6),
          })),
        },
      },
    }),
  });
  const body = await response.text();
  if (!body.includes('AppendMessagesPayload')) throw new Error(`seeding failed: ${body}`);
}

interface Figures {
  rps: number;
  cpuUs: number;
  failures: number;
}

async function load(url: string, pid: number, token: string | undefined, seconds: number): Promise<Figures> {
  const cpuBefore = cpuMicros(pid);
  const r = await loadGraphQL({
    url,
    connections: CONNECTIONS,
    seconds,
    query: LAST_50,
    variables: { key: KEY },
    headers: token ? { authorization: `Bearer ${token}` } : {},
    ok: (body) => !body.includes('"errors"') && body.includes('"messageCount":200'),
  });
  return { rps: r.rps, cpuUs: (cpuMicros(pid) - cpuBefore) / r.total, failures: r.failures };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  for (const count of [1, 100, 1_000]) {
    console.log(`auth token lookup, ${count} tokens configured: ${lookupMicros(count).toFixed(2)} µs`);
  }

  const dirs = [mkdtempSync(join(tmpdir(), 'sg-bench-auth-')), mkdtempSync(join(tmpdir(), 'sg-bench-auth-'))];
  const open = await spawnServer(['--data', dirs[0]!], { logLevel: 'error' });
  const guarded = await spawnServer(
    ['--data', dirs[1]!, '--token', `admin:${SECRET}-admin:admin`, '--token', `team:${SECRET}:read:team-a/`],
    { logLevel: 'error' },
  );
  try {
    await seed(open.url);
    await seed(guarded.url, `${SECRET}-admin`);
    const cases = [
      { name: 'no tokens', server: open, token: undefined },
      { name: 'prefix-confined token', server: guarded, token: SECRET },
    ];
    for (const c of cases) await load(c.server.url, c.server.child.pid!, c.token, 1);
    const figures = new Map<string, Figures[]>(cases.map((c) => [c.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of cases)
        figures.get(c.name)!.push(await load(c.server.url, c.server.child.pid!, c.token, DURATION_S));
    }
    const cpu = new Map<string, number>();
    for (const [name, list] of figures) {
      const failures = list.reduce((n, f) => n + f.failures, 0);
      cpu.set(name, median(list.map((f) => f.cpuUs)));
      console.log(`auth last 50 messages, ${name}: ${Math.round(median(list.map((f) => f.rps)))} req/s`);
      console.log(`auth last 50 messages, ${name}: ${Math.round(cpu.get(name)!)} µs server CPU per request`);
      console.log(`auth last 50 messages, ${name}: ${failures} failed responses`);
      if (failures > 0) process.exitCode = 1;
    }
    const ratio = cpu.get('prefix-confined token')! / cpu.get('no tokens')!;
    console.log(
      `auth last 50 messages: prefix-confined token costs ${ratio.toFixed(2)}x the CPU of no tokens`,
    );
  } finally {
    await stopServers([open, guarded]);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
