/**
 * One WebSocket flooding the server: `npx tsx bench/ws-flood.bench.ts [--quick]`.
 *
 * The real `sessiongraph serve` (SQLite) runs in a child process. A client opens one socket, sends
 * `connection_init`, then 10,000 `subscribe` frames in one go, while 4 other connections send
 * `{ __typename }` over HTTP back to back for 2 s from the first frame: the HTTP p99 during that
 * window is what every other client of the server would see. Measured with the default message
 * budget (100 a second, bursts of 300: the socket is closed with 4002 after its burst), without one
 * (a budget of 1,000,000), and with no flood at all (the baseline: on a loaded machine HTTP latency
 * is far from 0 without any flood), with the ratios. Target with the budget: under 50 ms on an idle
 * machine. The server's CPU time in the window is printed too: other processes disturb it less.
 * One printed line per figure; each figure is the median over the rounds.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { cpuMicros, spawnServer, stopServers } from './lib/server-child.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 1 : 3;
const FRAMES = 10_000;
const WINDOW_MS = 2_000;
const HTTP_CONNECTIONS = 4;
const SUBSCRIPTION = 'subscription ($key: String!) { sessionEvents(sessionKey: $key) { __typename } }';

interface Figures {
  p50: number;
  p99: number;
  requests: number;
  /** The close code of the flooding socket, or 0 if it was still open at the end of the window. */
  closeCode: number;
  /** Server CPU time (user + system) in the window, in ms. */
  cpuMs: number;
}

async function floodOnce(url: string, pid: number, frames: number): Promise<Figures> {
  const socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
  let closeCode = 0;
  socket.on('close', (code) => {
    closeCode = code;
  });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => {
      socket.send(JSON.stringify({ type: 'connection_init' }));
      socket.once('message', () => resolve());
    });
    socket.once('error', reject);
  });
  const latencies: number[] = [];
  const cpuBefore = cpuMicros(pid);
  const start = performance.now();
  for (let i = 0; i < frames; i++) {
    socket.send(
      JSON.stringify({
        id: String(i),
        type: 'subscribe',
        payload: { query: SUBSCRIPTION, variables: { key: `k${i}` } },
      }),
    );
  }
  await Promise.all(
    Array.from({ length: HTTP_CONNECTIONS }, async () => {
      while (performance.now() - start < WINDOW_MS) {
        const sent = performance.now();
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"query":"{ __typename }"}',
        });
        await response.arrayBuffer();
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        latencies.push(performance.now() - sent);
      }
    }),
  );
  const cpuMs = (cpuMicros(pid) - cpuBefore) / 1_000;
  socket.terminate();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  return { p50: at(0.5), p99: at(0.99), requests: latencies.length, closeCode, cpuMs };
}

async function measure(name: string, frames: number, extraArgs: string[] = []): Promise<Figures> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sg-bench-ws-flood-'));
  const server = await spawnServer(['--backend', 'sqlite', '--data', dataDir, ...extraArgs], {
    stderr: 'ignore',
  });
  try {
    const pid = server.child.pid!;
    await floodOnce(server.url, pid, frames); // warm-up
    const rounds: Figures[] = [];
    for (let i = 0; i < ROUNDS; i++) rounds.push(await floodOnce(server.url, pid, frames));
    const median = (pick: (f: Figures) => number) =>
      rounds.map(pick).sort((a, b) => a - b)[Math.floor(rounds.length / 2)]!;
    const f = {
      p50: median((r) => r.p50),
      p99: median((r) => r.p99),
      requests: median((r) => r.requests),
      closeCode: rounds[0]!.closeCode,
      cpuMs: median((r) => r.cpuMs),
    };
    console.log(`ws-flood ${name}: HTTP p99 ${f.p99.toFixed(1)} ms`);
    console.log(
      `ws-flood ${name}: HTTP p50 ${f.p50.toFixed(1)} ms, ${f.requests} requests in ${WINDOW_MS} ms`,
    );
    console.log(`ws-flood ${name}: server CPU ${Math.round(f.cpuMs)} ms in the ${WINDOW_MS} ms window`);
    if (frames > 0)
      console.log(
        `ws-flood ${name}: flooding socket ${f.closeCode ? `closed with ${f.closeCode}` : 'still open'}`,
      );
    return f;
  } finally {
    await stopServers([server]);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const idle = await measure('no flood (baseline)', 0);
  const budget = await measure(`${FRAMES}-frame flood, message budget`, FRAMES);
  const none = await measure(`${FRAMES}-frame flood, no budget`, FRAMES, [
    '--ws-message-rate',
    '1000000',
    '--ws-message-burst',
    '1000000',
  ]);
  console.log(
    `ws-flood: HTTP p99 without a budget is ${(none.p99 / budget.p99).toFixed(1)}x the p99 with it`,
  );
  console.log(
    `ws-flood: HTTP p99 with the budget is ${(budget.p99 / idle.p99).toFixed(1)}x the p99 with no flood`,
  );
  console.log(
    `ws-flood settings: ${HTTP_CONNECTIONS} HTTP connections for ${WINDOW_MS} ms from the first frame, medians of ${ROUNDS} rounds after a warm-up, SQLite, server in a child process`,
  );
}

await main();
