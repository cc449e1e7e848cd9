/**
 * What metrics cost: `npx tsx bench/metrics.bench.ts [--quick]`.
 *
 * Two real `sessiongraph serve` processes (SQLite, fresh workspaces), one with `/metrics` and one
 * with `--no-metrics`, take the same `appendMessage` load from autocannon in alternating rounds,
 * so that whatever else the machine runs weighs on both alike. The figure is the server's CPU
 * time per request (user + system, from /proc), the median over the rounds, and the ratio of the
 * two; then the size and time of one scrape of `/metrics` after the load.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGraphQL } from './lib/graphql-load.js';
import { cpuMicros, type ServerChild, spawnServer, stopServers } from './lib/server-child.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 3 : 7;
const DURATION_S = quick ? 2 : 3;
const CONNECTIONS = 20;

const APPEND = `mutation Append($input: AppendMessageInput!) { appendMessage(input: $input) {
  __typename ... on AppendMessagePayload { appendedMessage { seq } } ... on Error { code } } }`;

interface Server extends ServerChild {
  dataDir: string;
}

function serve(metrics: boolean): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sg-bench-metrics-'));
  const args = ['--data', dataDir, ...(metrics ? [] : ['--no-metrics'])];
  return spawnServer(args, { stderr: 'ignore' }).then((server) => ({ ...server, dataDir }));
}

/** Server CPU microseconds per request over one round; throws on any failed request. */
async function round(server: Server, seconds: number): Promise<number> {
  const before = cpuMicros(server.child.pid!);
  const r = await loadGraphQL({
    url: server.url,
    connections: CONNECTIONS,
    seconds,
    query: APPEND,
    variables: (n) => ({ input: { sessionKey: `s${n % 500}`, role: 'user', content: 'a short message' } }),
  });
  if (r.failures > 0) throw new Error(`${r.failures} requests failed`);
  return (cpuMicros(server.child.pid!) - before) / r.total;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  const [on, off] = await Promise.all([serve(true), serve(false)]);
  try {
    await round(on, 1);
    await round(off, 1);
    const cpu = { on: [] as number[], off: [] as number[] };
    for (let i = 0; i < ROUNDS; i++) {
      // alternate which goes first, so that a trend in the machine's load favours neither
      const order = i % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const);
      for (const which of order) cpu[which].push(await round(which === 'on' ? on : off, DURATION_S));
    }
    const withMetrics = median(cpu.on);
    const without = median(cpu.off);
    console.log(`metrics appendMessage: server CPU ${Math.round(withMetrics)} us per request with /metrics`);
    console.log(`metrics appendMessage: server CPU ${Math.round(without)} us per request with --no-metrics`);
    console.log(
      `metrics appendMessage: ${(withMetrics / without).toFixed(2)}x the CPU per request without metrics`,
    );

    const started = performance.now();
    const scrape = await fetch(new URL('/metrics', on.url));
    const text = await scrape.text();
    const ms = performance.now() - started;
    console.log(
      `metrics scrape: ${Math.round(text.length / 1024)} KiB, ${text.split('\n').length} lines, ${ms.toFixed(1)} ms`,
    );
    console.log(
      `metrics settings: ${CONNECTIONS} connections, medians of ${ROUNDS} alternating rounds of ${DURATION_S} s, SQLite, servers in child processes`,
    );
  } finally {
    for (const server of [on, off]) {
      await stopServers([server]);
      rmSync(server.dataDir, { recursive: true, force: true });
    }
  }
}

await main();
