/**
 * The client side of bench/feed.bench.ts, in its own process (forked with an IPC channel). It
 * opens subscribers as raw `ws` sockets (speaking graphql-transport-ws by hand in graphql-ws mode,
 * so that both modes cost the client the same), appends over HTTP, and times, per append, when
 * its HTTP response arrived and when the last subscriber received the event.
 *
 * Steps, each started by a message from the server process:
 * 1. `warm`: a throw-away set of subscribers goes live, receives a few events and disconnects, so
 *    that the server has compiled its code paths and sized its heap before the memory baseline;
 * 2. `connect`: the measured subscribers go live and receive the warm-up appends;
 * 3. `more`: as many again go live, for the server to read its memory, and disconnect;
 * 4. `measure`: the timed appends, to the measured subscribers.
 */

import WebSocket from 'ws';

export interface ClientsCommand {
  mode: 'graphql-ws' | 'ws';
  /** ws://.../graphql or ws://.../ */
  wsUrl: string;
  /** Where to POST an append. */
  appendUrl: string;
  clients: number;
  /** Subscribers of step 1. */
  warmClients: number;
  rounds: number;
  warmup: number;
  /** The message text each append stores (about 200 bytes). */
  content: string;
}

/** One measured append: its number (1-based, counting every append), when its HTTP response
 * arrived and when the last subscriber received the event, in ms of CLOCK_MONOTONIC, which every
 * process on the machine shares. */
export interface Round {
  n: number;
  respondedMs: number;
  lastReceiptMs: number;
}

export type ClientsReport =
  | { type: 'warmed' }
  | { type: 'subscribed'; frameBytes: number }
  | { type: 'doubled' }
  | { type: 'done'; rounds: Round[]; frameBytes: number };

const SUBSCRIPTION = `subscription ($key: String!) { sessionEvents(sessionKey: $key) {
  __typename ... on MessageAppended { cursor message { seq role content createdAt } } } }`;

const APPEND = `mutation ($input: AppendMessageInput!) { appendMessage(input: $input) {
  __typename ... on AppendMessagePayload { appendedMessage { seq } } } }`;

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let appended = 0;

async function append(command: ClientsCommand): Promise<number> {
  const n = ++appended;
  const body =
    command.mode === 'graphql-ws'
      ? {
          query: APPEND,
          variables: { input: { sessionKey: 'bench', role: 'assistant', content: command.content } },
        }
      : { content: command.content, n };
  const response = await fetch(command.appendUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok || text.includes('"errors"')) throw new Error(`append failed: ${response.status} ${text}`);
  return n;
}

/** A set of subscribers and what each received. */
class Subscribers {
  readonly sockets: WebSocket[] = [];
  private readonly received: number[];
  /** Frames socket i must have for the current append to have reached everyone. */
  private readonly target: number[];
  private pending = 0;
  private lastReceiptMs = 0;
  private reached: (() => void) | undefined;
  frameBytes = 0;

  constructor(
    private readonly command: ClientsCommand,
    count: number,
  ) {
    this.received = new Array<number>(count).fill(0);
    this.target = new Array<number>(count).fill(0);
  }

  async open(): Promise<void> {
    const { command } = this;
    const count = this.received.length;
    // in slices, so that the server's accept queue never overflows
    for (let start = 0; start < count; start += 100) {
      const slice = Array.from({ length: Math.min(100, count - start) }, (_, j) => this.openOne(start + j));
      await Promise.all(slice);
    }
    // a subscription without a cursor is live once it received something: append until all are
    while (this.received.some((n) => n === 0)) {
      await append(command);
      await sleep(200);
    }
    await sleep(300);
  }

  /** One append, timed: resolves once every subscriber received it. */
  async round(): Promise<Round> {
    for (let i = 0; i < this.target.length; i++) this.target[i] = this.received[i]! + 1;
    this.pending = this.target.length;
    const all = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 10_000);
      this.reached = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
    const n = await append(this.command);
    const respondedMs = nowMs();
    if (!(await all)) throw new Error(`append ${n}: ${this.pending} subscribers did not receive it`);
    return { n, respondedMs, lastReceiptMs: this.lastReceiptMs };
  }

  close(): void {
    for (const socket of this.sockets) socket.terminate();
  }

  private onFrame(i: number, bytes: number): void {
    this.frameBytes = bytes;
    this.received[i]!++;
    if (this.received[i] === this.target[i] && --this.pending === 0) {
      this.lastReceiptMs = nowMs();
      this.reached?.();
    }
  }

  private openOne(i: number): Promise<void> {
    const { command } = this;
    const protocol = command.mode === 'graphql-ws' ? 'graphql-transport-ws' : undefined;
    const socket = new WebSocket(command.wsUrl, protocol, { perMessageDeflate: false });
    this.sockets[i] = socket;
    return new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      if (command.mode === 'ws') {
        socket.once('open', () => resolve());
        socket.on('message', (data: Buffer) => this.onFrame(i, data.length));
        return;
      }
      socket.once('open', () => socket.send(JSON.stringify({ type: 'connection_init' })));
      socket.once('message', () => {
        // the connection_ack: subscribe, and count every later frame as an event
        const payload = { query: SUBSCRIPTION, variables: { key: 'bench' } };
        socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload }));
        socket.on('message', (data: Buffer) => this.onFrame(i, data.length));
        resolve();
      });
    });
  }
}

const nextCommand = () => new Promise<void>((resolve) => process.once('message', () => resolve()));

async function run(command: ClientsCommand): Promise<void> {
  const warm = new Subscribers(command, command.warmClients);
  await warm.open();
  for (let w = 0; w < 3; w++) await warm.round();
  warm.close();
  await sleep(500);
  process.send!({ type: 'warmed' } satisfies ClientsReport);

  await nextCommand();
  const subscribers = new Subscribers(command, command.clients);
  await subscribers.open();
  for (let w = 0; w < command.warmup; w++) await subscribers.round();
  process.send!({ type: 'subscribed', frameBytes: subscribers.frameBytes } satisfies ClientsReport);

  await nextCommand();
  const more = new Subscribers(command, command.clients);
  await more.open();
  process.send!({ type: 'doubled' } satisfies ClientsReport);
  await nextCommand();
  more.close();
  await sleep(500);

  const rounds: Round[] = [];
  for (let r = 0; r < command.rounds; r++) rounds.push(await subscribers.round());
  process.send!({ type: 'done', rounds, frameBytes: subscribers.frameBytes } satisfies ClientsReport);
  subscribers.close();
}

process.once('message', (command: ClientsCommand) => {
  run(command).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
});
