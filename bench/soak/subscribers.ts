/**
 * The soak's live subscribers: each follows one session with `sessionEvents`, from the session's
 * start, over graphql-ws (graphql-ws's own client, one socket each) or server-sent events, both
 * from test/helpers/live-client.ts. Each rebuilds its session from the events it receives. It is
 * disconnected at random (the socket dropped without a close frame, or closed cleanly) and, like
 * a client whose server restarted, subscribes again with the cursor of the last event it holds.
 * Nothing it received twice or missed is papered over: the rebuilt session is compared with the
 * store at the end (verify.ts).
 */

import { encodePosition, START_POSITION } from '../../src/events/message-cursor.js';
import {
  type LiveResult,
  type LiveSubscription,
  openWsClient,
  subscribeSse,
  type WsClient,
} from '../../test/helpers/live-client.js';

const SESSION_EVENTS = `subscription ($key: String!, $after: String) {
  sessionEvents(sessionKey: $key, after: $after) {
    __typename
    ... on LiveEvent { cursor }
    ... on MessageAppended { message { seq role content } } } }`;

export interface ReceivedMessage {
  seq: number;
  role: string;
  content: string;
}

interface LiveEvent {
  __typename: string;
  cursor: string;
  message?: ReceivedMessage;
}

export type Transport = 'graphql-ws' | 'sse';

/** One subscription attempt, from subscribe to its end. */
interface Leg {
  sub: LiveSubscription;
  client: WsClient | undefined;
  /** Resolves with how the leg ended. */
  done: Promise<string>;
  /** Ends the leg from this side. */
  disconnect(abrupt: boolean): void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Subscriber {
  /** The session as rebuilt from MessageAppended events, in arrival order. */
  readonly messages: ReceivedMessage[] = [];
  /** Events that broke the order (a seq not above the previous one): duplicates or reorderings. */
  outOfOrder = 0;
  /** SessionReset events: none are expected, nothing is ever removed. */
  resets = 0;
  /** Subscriptions made, the first included. */
  legs = 0;
  /** Random disconnects made from this side. */
  disconnects = 0;
  /** Errors the server sent in results, by `extensions.code`. */
  readonly errorCodes = new Map<string, number>();
  /** How legs ended, by cause (`close 1001`, `complete`, `disconnect`, `refused` ...). */
  readonly endings = new Map<string, number>();
  private cursor = encodePosition(START_POSITION);
  private leg: Leg | undefined;
  private running = false;
  private loop: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly transport: Transport,
    readonly sessionKey: string,
    private readonly url: () => string,
    private readonly random: () => number,
    /** Mean ms between random disconnects; 0 for none. */
    private readonly disconnectMeanMs: number,
  ) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
    this.scheduleDisconnect();
  }

  /** No more random disconnects; the subscription stays live. */
  calm(): void {
    clearTimeout(this.timer);
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.leg?.disconnect(false);
    await this.loop;
  }

  /** The seq of the last message received, 0 before any. */
  lastSeq(): number {
    const live = this.leg?.sub.events ?? [];
    for (let i = live.length - 1; i >= 0; i--) {
      const seq = (live[i] as LiveEvent | undefined)?.message?.seq;
      if (seq !== undefined) return seq;
    }
    return this.messages.at(-1)?.seq ?? 0;
  }

  private async run(): Promise<void> {
    let failedInRow = 0;
    while (this.running) {
      const leg = this.open();
      this.leg = leg;
      this.legs++;
      const ending = await leg.done;
      this.leg = undefined;
      const received = this.fold(leg.sub);
      this.endings.set(ending, (this.endings.get(ending) ?? 0) + 1);
      await leg.client?.close().catch(() => {});
      if (!this.running) return;
      if (ending === 'disconnect') {
        failedInRow = 0;
        await sleep(this.random() * 1_000);
      } else {
        // the server ended it (restart, overflow) or could not be reached: back off a little
        failedInRow = received > 0 ? 1 : failedInRow + 1;
        await sleep(Math.min(2_000, 200 * failedInRow) + this.random() * 300);
      }
    }
  }

  private open(): Leg {
    const variables = { key: this.sessionKey, after: this.cursor };
    let disconnected!: (ending: string) => void;
    const byUs = new Promise<string>((resolve) => {
      disconnected = resolve;
    });
    let client: WsClient | undefined;
    let sub: LiveSubscription;
    let connected = false;
    if (this.transport === 'graphql-ws') {
      client = openWsClient(this.url());
      client.client.on('connected', () => {
        connected = true;
      });
      sub = client.subscribe(SESSION_EVENTS, variables);
    } else {
      sub = subscribeSse(this.url(), SESSION_EVENTS, variables);
    }
    const byServer = sub.ended.then(
      () => 'complete',
      (err: unknown) => describeError(err),
    );
    return {
      sub,
      client,
      done: Promise.race([byUs, byServer]),
      disconnect(abrupt) {
        disconnected('disconnect');
        // ws throws when a socket still connecting is terminated: close those cleanly
        if (abrupt && client && connected) client.client.terminate();
        else sub.stop();
      },
    };
  }

  /** Takes a finished leg's events into the rebuilt session; returns how many events it had. */
  private fold(sub: LiveSubscription): number {
    for (const result of sub.results) this.countErrors(result);
    for (const event of sub.events as Array<LiveEvent | null>) {
      if (!event) continue;
      if (event.__typename === 'SessionReset') this.resets++;
      if (event.message) {
        if (event.message.seq <= (this.messages.at(-1)?.seq ?? 0)) this.outOfOrder++;
        this.messages.push(event.message);
      }
      this.cursor = event.cursor;
    }
    return sub.events.length;
  }

  private countErrors(result: LiveResult): void {
    for (const error of result.errors ?? []) {
      const code = String(error.extensions?.code ?? 'none');
      this.errorCodes.set(code, (this.errorCodes.get(code) ?? 0) + 1);
    }
  }

  private scheduleDisconnect(): void {
    if (this.disconnectMeanMs <= 0) return;
    const delay = -Math.log(1 - this.random()) * this.disconnectMeanMs;
    this.timer = setTimeout(() => {
      // half drop the socket without a close frame (graphql-ws only), half close cleanly
      if (this.leg) {
        this.disconnects++;
        this.leg.disconnect(this.random() < 0.5);
      }
      this.scheduleDisconnect();
    }, delay);
  }
}

function describeError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'number') return `close ${code}`;
  // fetch (SSE) puts the socket error in `cause`, ws's ErrorEvent (graphql-ws) in `error`
  const e = err as { cause?: { code?: string }; error?: { code?: string } } | null;
  const cause = e?.cause?.code ?? e?.error?.code;
  if (cause) return cause;
  if (err instanceof Error) return err.message.slice(0, 60);
  return String((err as { type?: string } | null)?.type ?? err);
}

/** Opens `count` subscribers in slices, so that the server's accept queue never overflows. */
export async function startSubscribers(subscribers: Subscriber[], slice = 50): Promise<void> {
  for (let i = 0; i < subscribers.length; i += slice) {
    for (const s of subscribers.slice(i, i + slice)) s.start();
    await sleep(100);
  }
}
