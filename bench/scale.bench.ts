/**
 * Scale-out benchmark: `npx tsx bench/scale.bench.ts [--quick] [--no-redis]`.
 *
 * The real `sessiongraph serve` in child processes, on SQLite (a fresh workspace) and on
 * PostgreSQL (a fresh schema of SESSIONGRAPH_BENCH_DATABASE_URL, default the test database), each
 * as one instance and as two instances on the same store; two instances share the Redis event bus
 * (SESSIONGRAPH_BENCH_REDIS_URL, default the local Redis) unless `--no-redis`. Two loads, the
 * connections spread evenly over the instances:
 * - `appendMessage`: one message per request over 1,000 sessions;
 * - `search`: a two-word query (one common, one rarer word) over 20,000 seeded messages, first 20.
 * One printed line per figure: req/s and p50 per load and setup, and where the time goes: CPU
 * microseconds per request in the sessiongraph processes, in PostgreSQL's processes and in Redis
 * (from /proc, so other work on the machine disturbs it far less than throughput).
 * Every response is checked: a GraphQL error or a non-200 counts as a failure and is printed.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { loadGraphQL } from './lib/graphql-load.js';
import { cpuMicros, type ServerChild, spawnServer, stopServers } from './lib/server-child.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const withRedis = !argv.includes('--no-redis');
/** Each load runs this many times per setup, interleaved; each figure is the median. */
const ROUNDS = quick ? 1 : 3;
const DURATION_S = quick ? 3 : 4;
const WARMUP_S = quick ? 1 : 2;
const CONNECTIONS = 40;
const SESSIONS = 1_000;
const SEARCH_SESSIONS = 200;
const SEARCH_MESSAGES = 100;

const DATABASE_URL = process.env.SESSIONGRAPH_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.SESSIONGRAPH_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

const APPEND = `mutation Append($input: AppendMessageInput!) { appendMessage(input: $input) {
  __typename ... on AppendMessagePayload { appendedMessage { seq } } ... on Error { code } } }`;
const SEED = `mutation Seed($input: AppendMessagesInput!) { appendMessages(input: $input) {
  __typename ... on Error { code } } }`;
const SEARCH = `query Search($q: String!) { search(query: $q, first: 20) {
  edges { node { score snippet message { seq sessionKey } } } } }`;

const COMMON = ['deploy', 'server', 'error', 'build', 'session', 'token', 'agent', 'query'];
const RARE = Array.from({ length: 40 }, (_, i) => `zeta${i}`);

interface Setup {
  name: string;
  instances: ServerChild[];
  cleanup: () => Promise<void>;
}

interface Figures {
  rps: number;
  p50: number;
  failures: number;
  /** CPU microseconds per request: the sessiongraph processes, PostgreSQL, Redis. */
  serverUs: number;
  postgresUs: number;
  redisUs: number;
}

// ---- processes and their CPU ---------------------------------------------------------------

function pidsNamed(name: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name) pids.push(Number(entry));
    } catch {
      // exited
    }
  }
  return pids;
}

const cpuOf = (pids: number[]) => pids.reduce((sum, pid) => sum + cpuMicros(pid), 0);

// ---- setups -------------------------------------------------------------------------------

/** Redis flags for a setup: two instances always share the bus; one only when asked to. */
function redisArgs(count: number, forced: boolean): string[] {
  if (!withRedis || (count < 2 && !forced)) return [];
  return ['--redis-url', REDIS_URL, '--redis-prefix', `bench-${randomBytes(4).toString('hex')}`];
}

async function sqliteSetup(count: number, forceRedis = false): Promise<Setup> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sg-bench-scale-'));
  const redis = redisArgs(count, forceRedis);
  const instances: ServerChild[] = [];
  for (let i = 0; i < count; i++) {
    instances.push(await spawnServer(['--backend', 'sqlite', '--data', dataDir, ...redis]));
  }
  return {
    name: `sqlite x${count}${redis.length ? ' +redis' : ''}`,
    instances,
    cleanup: async () => {
      await stopServers(instances);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function postgresSetup(count: number, forceRedis = false): Promise<Setup> {
  const schema = `sg_bench_${randomBytes(4).toString('hex')}`;
  const redis = redisArgs(count, forceRedis);
  const instances: ServerChild[] = [];
  const args = [
    '--backend',
    'postgres',
    '--database-url',
    DATABASE_URL,
    '--database-schema',
    schema,
    '--pool-size',
    '10',
  ];
  for (let i = 0; i < count; i++) instances.push(await spawnServer([...args, ...redis]));
  return {
    name: `postgres x${count}${redis.length ? ' +redis' : ''}`,
    instances,
    cleanup: async () => {
      await stopServers(instances);
      const client = new pg.Client({ connectionString: DATABASE_URL });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    },
  };
}

// ---- loads --------------------------------------------------------------------------------

async function post(url: string, query: string, variables: Record<string, unknown>): Promise<void> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.text();
  if (!response.ok || body.includes('"errors"') || body.includes('"code"')) throw new Error(body);
}

/** 20,000 messages over 200 sessions: common words everywhere, each rare word in 1 of 40. */
async function seedSearch(url: string): Promise<void> {
  for (let s = 0; s < SEARCH_SESSIONS; s++) {
    const messages = Array.from({ length: SEARCH_MESSAGES }, (_, i) => {
      const n = s * SEARCH_MESSAGES + i;
      const words = [COMMON[n % COMMON.length], COMMON[(n * 7) % COMMON.length], RARE[n % RARE.length]];
      return {
        role: i % 2 ? 'assistant' : 'user',
        content: `message ${n}: the ${words.join(' and the ')} again`,
      };
    });
    await post(url, SEED, { input: { sessionKey: `search_${s}`, messages } });
  }
}

interface Load {
  name: string;
  query: string;
  variables: (n: number) => Record<string, unknown>;
}

const LOADS: Load[] = [
  {
    name: 'appendMessage',
    query: APPEND,
    variables: (n) => ({
      input: {
        sessionKey: `bench_${n % SESSIONS}`,
        role: 'user',
        content: `benchmark message number ${n}, ~60 bytes`,
      },
    }),
  },
  {
    name: 'search',
    query: SEARCH,
    variables: (n) => ({ q: `${COMMON[n % COMMON.length]} ${RARE[(n * 13) % RARE.length]}` }),
  },
];

async function run(setup: Setup, load: Load, seconds: number): Promise<Figures> {
  const servers = setup.instances.map((i) => i.child.pid!);
  const postgres = pidsNamed('postgres');
  const redis = pidsNamed('redis-server');
  const before = { server: cpuOf(servers), postgres: cpuOf(postgres), redis: cpuOf(redis) };
  const per = Math.ceil(CONNECTIONS / setup.instances.length);
  const results = await Promise.all(
    setup.instances.map((instance, i) =>
      loadGraphQL({
        url: instance.url,
        connections: per,
        seconds,
        query: load.query,
        variables: load.variables,
        first: i * 1_000_000_000,
      }),
    ),
  );
  const requests = results.reduce((sum, r) => sum + r.total, 0);
  const p50s = results.map((r) => r.p50).sort((a, b) => a - b);
  return {
    rps: requests / seconds,
    p50: p50s[Math.floor(p50s.length / 2)]!,
    failures: results.reduce((sum, r) => sum + r.failures, 0),
    serverUs: (cpuOf(servers) - before.server) / requests,
    postgresUs: (cpuOf(postgres) - before.postgres) / requests,
    redisUs: (cpuOf(redis) - before.redis) / requests,
  };
}

function median(figures: Figures[]): Figures {
  const mid = (pick: (f: Figures) => number) =>
    figures.map(pick).sort((a, b) => a - b)[Math.floor(figures.length / 2)]!;
  return {
    rps: mid((f) => f.rps),
    p50: mid((f) => f.p50),
    failures: figures.reduce((n, f) => n + f.failures, 0),
    serverUs: mid((f) => f.serverUs),
    postgresUs: mid((f) => f.postgresUs),
    redisUs: mid((f) => f.redisUs),
  };
}

async function measure(open: () => Promise<Setup>): Promise<void> {
  const setup = await open();
  try {
    await seedSearch(setup.instances[0]!.url);
    for (const load of LOADS) await run(setup, load, WARMUP_S);
    const rounds = new Map<string, Figures[]>(LOADS.map((l) => [l.name, []]));
    for (let i = 0; i < ROUNDS; i++) {
      for (const load of LOADS) rounds.get(load.name)!.push(await run(setup, load, DURATION_S));
    }
    for (const load of LOADS) {
      const f = median(rounds.get(load.name)!);
      const label = `scale ${load.name} ${setup.name}`;
      console.log(`${label}: ${Math.round(f.rps)} req/s`);
      console.log(`${label}: latency p50 ${f.p50} ms`);
      console.log(
        `${label}: CPU per request ${Math.round(f.serverUs)} us sessiongraph, ${Math.round(f.postgresUs)} us postgres, ${Math.round(f.redisUs)} us redis`,
      );
      if (f.failures > 0) console.log(`${label}: ${f.failures} failed responses`);
    }
  } finally {
    await setup.cleanup();
  }
}

await measure(() => sqliteSetup(1));
await measure(() => postgresSetup(1));
// One instance on the Redis bus: what the bus itself costs, apart from sharing the cores.
await measure(() => postgresSetup(1, true));
await measure(() => sqliteSetup(2));
await measure(() => postgresSetup(2));
console.log(
  `scale settings: ${CONNECTIONS} connections spread over the instances, pipelining 1, medians of ${ROUNDS} rounds of ${DURATION_S} s per load after ${WARMUP_S} s warm-up, ${SEARCH_SESSIONS * SEARCH_MESSAGES} searchable messages, two instances ${withRedis ? 'on the Redis bus' : 'without Redis'}`,
);
