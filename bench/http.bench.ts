/**
 * HTTP benchmark: `npx tsx bench/http.bench.ts [--quick]`.
 *
 * The real `sessiongraph serve` (SQLite, a fresh temp workspace) runs in a child process, so the
 * server and autocannon each get one of the two cores. Four loads, each after a warm-up:
 * - `{ __typename }`: the fixed cost of a GraphQL request over HTTP (the baseline);
 * - `appendMessage`: one message per request, spread over 1,000 sessions, variables per request;
 * - `session { messages(last: 50) }` of a 200-message session, and the same page before a cursor
 *   (the cursor checked against the session in the same read).
 * One printed line per figure: req/s, p50 and p99 latency, each load's ratio to the baseline, and
 * the server's CPU time per request (user + system, from /proc), which other processes on the
 * machine disturb far less than throughput.
 * Every response is checked: a GraphQL error or a non-200 counts as a failure and is printed.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGraphQL } from './lib/graphql-load.js';
import { cpuMicros, spawnServer, stopServers } from './lib/server-child.js';

const quick = process.argv.includes('--quick');
/** Each load runs this many times, interleaved with the others, so that whatever else the machine
 * runs meanwhile weighs on every load alike; each figure is the median over the rounds. */
const ROUNDS = quick ? 1 : 5;
const DURATION_S = quick ? 3 : 4;
const WARMUP_S = quick ? 1 : 3;
const CONNECTIONS = 50;
const SESSIONS = 1_000;

interface Load {
  name: string;
  query: string;
  /** Variables for the n-th request; fixed variables when omitted. */
  variables?: (n: number) => Record<string, unknown>;
}

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  failures: number;
  /** Server CPU microseconds per completed request. */
  cpuUs: number;
}

const APPEND = `mutation Append($input: AppendMessageInput!) { appendMessage(input: $input) {
  __typename ... on AppendMessagePayload { appendedMessage { seq } } ... on Error { code } } }`;

const LAST_50 = `query Last50($key: String!) { session(key: $key) { messageCount
  messages(last: 50) { edges { node { seq role content } } pageInfo { hasPreviousPage } } } }`;

const BEFORE_50 = `query Before50($key: String!, $before: String!) { session(key: $key) { messageCount
  messages(last: 50, before: $before) { edges { node { seq role content } } pageInfo { hasPreviousPage } } } }`;

/** The cursor of bench_history's 151st message, set once the history is seeded. */
let before150 = '';

const SEED = `mutation Seed($input: AppendMessagesInput!) { appendMessages(input: $input) {
  ... on AppendMessagesPayload { session { messageCount } } } }`;

const loads: Load[] = [
  { name: '{ __typename }', query: '{ __typename }' },
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
  { name: 'session { messages(last: 50) }', query: LAST_50, variables: () => ({ key: 'bench_history' }) },
  {
    name: 'session { messages(last: 50, before: cursor) }',
    query: BEFORE_50,
    variables: () => ({ key: 'bench_history', before: before150 }),
  },
];

async function post(url: string, query: string, variables?: Record<string, unknown>): Promise<unknown> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { errors?: unknown };
  if (body.errors || !response.ok) throw new Error(JSON.stringify(body));
  return body;
}

async function run(url: string, pid: number, load: Load, seconds: number): Promise<Figures> {
  const cpuBefore = cpuMicros(pid);
  const r = await loadGraphQL({
    url,
    connections: CONNECTIONS,
    seconds,
    query: load.query,
    variables: load.variables ?? {},
  });
  return {
    rps: r.rps,
    p50: r.p50,
    p99: r.p99,
    failures: r.failures,
    cpuUs: (cpuMicros(pid) - cpuBefore) / r.total,
  };
}

function medianOf(figures: Figures[]): Figures {
  const median = (pick: (f: Figures) => number) => {
    const sorted = figures.map(pick).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  };
  return {
    rps: median((f) => f.rps),
    p50: median((f) => f.p50),
    p99: median((f) => f.p99),
    cpuUs: median((f) => f.cpuUs),
    failures: figures.reduce((n, f) => n + f.failures, 0),
  };
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sg-bench-http-'));
  const server = await spawnServer(['--backend', 'sqlite', '--data', dataDir]);
  const { child, url } = server;
  try {
    await post(url, SEED, {
      input: {
        sessionKey: 'bench_history',
        messages: Array.from({ length: 200 }, (_, i) => ({
          role: i % 2 ? 'assistant' : 'user',
          content: `history message ${i} `.repeat(6),
        })),
      },
    });
    const cursors = (await post(
      url,
      '{ session(key: "bench_history") { messages(first: 151) { edges { cursor } } } }',
    )) as {
      data: { session: { messages: { edges: Array<{ cursor: string }> } } };
    };
    before150 = cursors.data.session.messages.edges[150]!.cursor;
    for (const load of loads) await run(url, child.pid!, load, WARMUP_S);
    const rounds = new Map<string, Figures[]>(loads.map((l) => [l.name, []]));
    for (let i = 0; i < ROUNDS; i++) {
      for (const load of loads) rounds.get(load.name)!.push(await run(url, child.pid!, load, DURATION_S));
    }
    const results = new Map([...rounds].map(([name, figures]) => [name, medianOf(figures)]));
    const base = results.get(loads[0]!.name)!;
    for (const [name, f] of results) {
      console.log(`http ${name}: ${Math.round(f.rps)} req/s`);
      console.log(`http ${name}: latency p50 ${f.p50} ms, p99 ${f.p99} ms`);
      console.log(`http ${name}: server CPU ${Math.round(f.cpuUs)} us per request`);
      if (f !== base)
        console.log(`http ${name}: ${(f.rps / base.rps).toFixed(2)}x the { __typename } throughput`);
      if (f.failures > 0) console.log(`http ${name}: ${f.failures} failed responses`);
    }
    console.log(
      `http settings: ${CONNECTIONS} connections, pipelining 1, medians of ${ROUNDS} interleaved rounds of ${DURATION_S} s per load after ${WARMUP_S} s warm-up, SQLite, server in a child process`,
    );
  } finally {
    await stopServers([server]);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
