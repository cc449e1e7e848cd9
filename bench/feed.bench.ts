/**
 * Live fan-out benchmark: `npx tsx bench/feed.bench.ts [--quick]`.
 *
 * 1,000 subscribers to one session in a separate client process (bench/feed-clients.ts), and 100
 * appends over HTTP (+10 warm-up), each after the previous one reached every subscriber. Two
 * servers, each in a fresh process of its own (so that one's heap does not hide the other's RSS):
 * - sessiongraph: startServer (SQLite), `sessionEvents` over graphql-ws, appends via `appendMessage`;
 * - plain ws, the ceiling: node:http + ws, a POST that broadcasts a frame of the same size.
 * Three trials each, interleaved, medians reported (`--trials n`; one with --quick, 200 subscribers).
 *
 * Per append, on CLOCK_MONOTONIC, which all processes share:
 * - from the append's HTTP response to the last subscriber's receipt (issue 4's figure). Both
 *   servers send the event before they answer the append, so this is near zero and can be
 *   negative: the client process reads the last frame before it has processed the response;
 * - from the publish (the server's clock, when the event leaves the committed write; for plain
 *   ws, the start of the broadcast loop) to the last subscriber's receipt: the fan-out itself;
 * - server RSS and JS heap per subscriber: (with the subscribers - before) / subscribers, each read
 *   after a full GC, the young generation fixed in size. "Before" is read once a throw-away set of
 *   20 subscribers came and went, or code compiled on first use would count per subscriber. Then
 *   the same over 1,000 more subscribers, while the first 1,000 stay. The heap figures are the
 *   steady ones: RSS moves in whole pages that V8 commits ahead, so the plain ws server's 2.5 KiB
 *   of heap per subscriber can show as less RSS than that.
 * One printed line per figure, then the ratios to the ceiling (targets: p99 within 1.5x, memory
 * per subscriber within 2x).
 */

import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { WebSocketServer } from 'ws';
import { parseConfig, serveOptions } from '../src/config.js';
import type { EventBus } from '../src/events/event-bus.js';
import { createLocalEventBus } from '../src/events/local-event-bus.js';
import { createLogger } from '../src/logger.js';
import { startServer } from '../src/server.js';
import type { ClientsCommand, ClientsReport, Round } from './feed-clients.js';

type Mode = 'sessiongraph' | 'ws';

const quick = process.argv.includes('--quick');
const CLIENTS = quick ? 200 : 1_000;
const ROUNDS = quick ? 30 : 100;
const WARMUP = 10;
/** Subscribers that come and go before the memory baseline (see drive()). */
const WARM_CLIENTS = 20;
/** Each server's young generation, fixed (see trial()). @default 16 // MiB: V8's default maximum */
const SEMI_SPACE_MB = 16;
const trialsFlag = process.argv.indexOf('--trials');
const TRIALS = trialsFlag >= 0 ? Number(process.argv[trialsFlag + 1]) : quick ? 1 : 3;
/** About 200 bytes, like a chat message. */
const CONTENT =
  'The deployment finished without errors. I ran the migrations, restarted the workers, and the health ' +
  'checks are green again; latency is back under the threshold we agreed on yesterday, so we can close it.';

/** What one server process reports (as one JSON line on stdout). */
interface Trial {
  responseP50: number;
  responseP99: number;
  publishP50: number;
  publishP99: number;
  rssKiBPerSubscriber: number;
  heapKiBPerSubscriber: number;
  /** The same, over a second set as large, while the first is connected. */
  marginalRssKiBPerSubscriber: number;
  marginalHeapKiBPerSubscriber: number;
  frameBytes: number;
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const median = (values: number[]) => percentile(values, 50);

// ---- one server process: `--serve <mode> [--frame-bytes n]` ----

function memoryAfterGc(): { rss: number; heap: number } {
  const gc = (globalThis as { gc?: () => void }).gc!;
  for (let i = 0; i < 3; i++) gc();
  const { rss, heapUsed } = process.memoryUsage();
  return { rss, heap: heapUsed };
}

/**
 * Runs the client process against a server; `published[n - 1]` is when append n was published.
 * The memory baseline is read after a throw-away set of subscribers came and went (see
 * feed-clients.ts), so that code compiled on first use and the young generation's growth are not
 * counted per subscriber.
 */
async function drive(
  commandBase: Pick<ClientsCommand, 'mode' | 'wsUrl' | 'appendUrl'>,
  published: number[],
): Promise<Trial> {
  const child: ChildProcess = fork(fileURLToPath(new URL('./feed-clients.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const reports: ClientsReport[] = [];
  let wake = () => {};
  child.on('message', (report: ClientsReport) => {
    reports.push(report);
    wake();
  });
  let exitCode: number | null | undefined;
  child.once('exit', (code) => {
    exitCode = code;
    wake();
  });
  const next = async (type: ClientsReport['type']): Promise<ClientsReport> => {
    while (reports.length === 0) {
      if (exitCode !== undefined) throw new Error(`the client process exited (${exitCode})`);
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    const report = reports.shift()!;
    if (report.type !== type) throw new Error(`expected ${type}, got ${report.type}`);
    return report;
  };

  const command: ClientsCommand = {
    ...commandBase,
    clients: CLIENTS,
    warmClients: WARM_CLIENTS,
    rounds: ROUNDS,
    warmup: WARMUP,
    content: CONTENT,
  };
  child.send(command);
  await next('warmed');
  const before = memoryAfterGc();
  child.send('connect');
  await next('subscribed');
  const withSubscribers = memoryAfterGc();
  child.send('more');
  await next('doubled');
  const doubled = memoryAfterGc();
  child.send('measure');
  const done = await next('done');
  if (done.type !== 'done') throw new Error('unexpected report');
  const fromResponse = done.rounds.map((r: Round) => r.lastReceiptMs - r.respondedMs);
  const fromPublish = done.rounds.map((r: Round) => r.lastReceiptMs - published[r.n - 1]!);
  return {
    responseP50: percentile(fromResponse, 50),
    responseP99: percentile(fromResponse, 99),
    publishP50: percentile(fromPublish, 50),
    publishP99: percentile(fromPublish, 99),
    rssKiBPerSubscriber: (withSubscribers.rss - before.rss) / 1_024 / CLIENTS,
    heapKiBPerSubscriber: (withSubscribers.heap - before.heap) / 1_024 / CLIENTS,
    marginalRssKiBPerSubscriber: (doubled.rss - withSubscribers.rss) / 1_024 / CLIENTS,
    marginalHeapKiBPerSubscriber: (doubled.heap - withSubscribers.heap) / 1_024 / CLIENTS,
    frameBytes: done.frameBytes,
  };
}

async function serveSessiongraph(): Promise<Trial> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sg-feed-bench-'));
  const published: number[] = [];
  const local = createLocalEventBus();
  // stamps the moment each committed append is published, as the server's side of the clock
  const bus: EventBus = {
    ...local,
    publish(event) {
      if (event.type === 'MessageAppended' && event.message.content === CONTENT) published.push(nowMs());
      local.publish(event);
    },
  };
  // the serve command's own defaults, whatever settings it has by now
  const serve = new Command().exitOverride();
  for (const option of serveOptions()) serve.addOption(option);
  serve.parse(['--backend', 'sqlite', '--data', dataDir, '--port', '0', '--log-level', 'silent'], {
    from: 'user',
  });
  const server = await startServer(parseConfig(serve.opts()), {
    logger: createLogger({ level: 'silent' }),
    bus,
    graphqlWs: { idleTimeoutMs: 3_600_000 },
  });
  try {
    await server.backend.append('bench', [{ role: 'user', content: 'hello' }]);
    return await drive(
      { mode: 'graphql-ws', wsUrl: server.url.replace('http', 'ws'), appendUrl: server.url },
      published,
    );
  } finally {
    await server.close();
    await local.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function servePlainWs(frameBytes: number): Promise<Trial> {
  const published: number[] = [];
  let wss!: WebSocketServer;
  const http: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      const { content, n } = JSON.parse(body) as { content: string; n: number };
      // as many bytes as the graphql-ws `next` frame of the sessiongraph run
      const frame = JSON.stringify({ id: '1', type: 'next', payload: { data: { n, content } } });
      const padding = Math.max(0, frameBytes - frame.length - 10);
      const padded = `${frame.slice(0, -1)},"pad":"${'x'.repeat(padding)}"}`;
      published.push(nowMs());
      for (const client of wss.clients) client.send(padded);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  wss = new WebSocketServer({ server: http, perMessageDeflate: false });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  try {
    return await drive(
      { mode: 'ws', wsUrl: `ws://127.0.0.1:${port}/`, appendUrl: `http://127.0.0.1:${port}/append` },
      published,
    );
  } finally {
    for (const client of wss.clients) client.terminate();
    await new Promise((resolve) => wss.close(resolve));
    await new Promise((resolve) => http.close(resolve));
  }
}

// ---- the orchestrator ----

function trial(mode: Mode, frameBytes: number): Trial {
  const self = fileURLToPath(import.meta.url);
  const args = [
    '--expose-gc',
    // a young generation of fixed size: grown by the first bursts, it would count as per-subscriber RSS
    `--min-semi-space-size=${SEMI_SPACE_MB}`,
    `--max-semi-space-size=${SEMI_SPACE_MB}`,
    '--import',
    'tsx',
    self,
    '--serve',
    mode,
    '--frame-bytes',
    String(frameBytes),
  ];
  if (quick) args.push('--quick');
  const run = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (run.status !== 0) throw new Error(`the ${mode} server process failed (${run.status ?? run.signal})`);
  return JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Trial;
}

const serveIndex = process.argv.indexOf('--serve');
if (serveIndex >= 0) {
  const mode = process.argv[serveIndex + 1] as Mode;
  const frameBytes = Number(process.argv[process.argv.indexOf('--frame-bytes') + 1]);
  const result = mode === 'sessiongraph' ? await serveSessiongraph() : await servePlainWs(frameBytes);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

const ours: Trial[] = [];
const ceiling: Trial[] = [];
for (let t = 0; t < TRIALS; t++) {
  ours.push(trial('sessiongraph', 0));
  ceiling.push(trial('ws', ours[0]!.frameBytes));
}

const fmt = (n: number, digits = 2) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const of = (trials: Trial[], key: keyof Trial) => median(trials.map((x) => x[key]));
const setting = `${CLIENTS} subscribers in a separate process, ${ROUNDS} appends, ${ours[0]!.frameBytes} B frame, median of ${TRIALS}`;
for (const [name, trials] of [
  ['sessiongraph graphql-ws', ours],
  ['plain ws (ceiling)', ceiling],
] as const) {
  console.log(
    `feed fan-out, ${name}: append response to last receipt p50 ${fmt(of(trials, 'responseP50'))} ms (${setting})`,
  );
  console.log(
    `feed fan-out, ${name}: append response to last receipt p99 ${fmt(of(trials, 'responseP99'))} ms`,
  );
  console.log(`feed fan-out, ${name}: publish to last receipt p50 ${fmt(of(trials, 'publishP50'))} ms`);
  console.log(`feed fan-out, ${name}: publish to last receipt p99 ${fmt(of(trials, 'publishP99'))} ms`);
  console.log(
    `feed fan-out, ${name}: server RSS per subscriber ${fmt(of(trials, 'rssKiBPerSubscriber'), 1)} KiB`,
  );
  console.log(
    `feed fan-out, ${name}: server JS heap per subscriber ${fmt(of(trials, 'heapKiBPerSubscriber'), 1)} KiB`,
  );
  console.log(
    `feed fan-out, ${name}: server RSS per subscriber, ${CLIENTS} more ${fmt(of(trials, 'marginalRssKiBPerSubscriber'), 1)} KiB`,
  );
  console.log(
    `feed fan-out, ${name}: server JS heap per subscriber, ${CLIENTS} more ${fmt(of(trials, 'marginalHeapKiBPerSubscriber'), 1)} KiB`,
  );
}
console.log(
  `feed fan-out ratio, publish to last receipt p99, sessiongraph / plain ws: ${fmt(of(ours, 'publishP99') / of(ceiling, 'publishP99'))}x (target <= 1.5x)`,
);
for (const [label, key] of [
  ['RSS per subscriber', 'rssKiBPerSubscriber'],
  [`RSS per subscriber, ${CLIENTS} more`, 'marginalRssKiBPerSubscriber'],
  ['JS heap per subscriber', 'heapKiBPerSubscriber'],
] as const) {
  console.log(
    `feed fan-out ratio, ${label}, sessiongraph / plain ws: ${fmt(of(ours, key) / of(ceiling, key))}x (target <= 2x)`,
  );
}
