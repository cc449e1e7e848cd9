/**
 * The soak's writers: each appends one message at a time over HTTP (`appendMessage`), at a steady
 * share of the total rate, to a random session. Every message carries a clientMessageId, so a
 * writer retries until it holds an answer, through a server restart, without storing anything
 * twice: a retry of an append that was stored before the restart comes back `replayed: true`.
 *
 * A restart rarely loses an answer (the server drains before it stops), so that path would go
 * untested: a share of acknowledged appends is sent again on purpose, as by a client whose answer
 * was lost, and each must come back as a replay of the very message already stored.
 */

import { postGraphql } from './graphql-http.js';

const APPEND = `mutation ($input: AppendMessageInput!) { appendMessage(input: $input) {
  __typename
  ... on AppendMessagePayload { replayed appendedMessage { seq role content } }
  ... on Error { code message } } }`;

/** An append the server acknowledged. */
export interface Ack {
  clientMessageId: string;
  sessionKey: string;
  seq: number;
  role: string;
  content: string;
  /** The acknowledgement was of a retry whose first attempt had stored it. */
  replayed: boolean;
  /** Requests it took (1: no retry). */
  attempts: number;
  /** From the first attempt to the acknowledgement. */
  latencyMs: number;
}

export interface WriterStats {
  acks: Map<string, Ack>;
  /** Attempts that found the server down (refused, reset, timed out) or unavailable (503). */
  retries: number;
  /** Appends answered with a typed error other than UNAVAILABLE, or an unexpected answer. */
  failures: string[];
  /** Slots skipped because the previous append of a writer was still retrying. */
  skippedSlots: number;
  /** Acknowledged appends sent again on purpose, with the same clientMessageId. */
  resends: number;
  /** Resends answered `replayed: true` with the seq, role and content of the first answer. */
  resendsReplayed: number;
}

interface Input {
  clientMessageId: string;
  sessionKey: string;
  role: string;
  content: string;
}

interface Answer {
  stored: { seq: number; role: string; content: string };
  replayed: boolean;
  attempts: number;
}

const FILLER =
  'Checked the deploy logs; the workers restarted cleanly and the queue drained. Latency is back under the ' +
  'threshold, so I will close the incident after one more hour of quiet graphs.';

/** Attempts before a writer gives an append up (about a minute of retries). @default 300 */
const MAX_ATTEMPTS = 300;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Writers {
  readonly stats: WriterStats = {
    acks: new Map(),
    retries: 0,
    failures: [],
    skippedSlots: 0,
    resends: 0,
    resendsReplayed: 0,
  };
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly url: () => string,
    private readonly sessionKeys: readonly string[],
    private readonly options: { rate: number; writers: number; resendShare: number; random: () => number },
  ) {}

  start(): void {
    this.running = true;
    const intervalMs = (1_000 * this.options.writers) / this.options.rate;
    for (let w = 0; w < this.options.writers; w++) {
      // spread the writers' slots over one interval, so that the rate is steady, not bursty
      this.loops.push(this.loop(w, intervalMs, (intervalMs * w) / this.options.writers));
    }
  }

  /** Stops scheduling; resolves once every writer's last append is acknowledged (or failed). */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** The highest acknowledged seq of each session. */
  lastSeqs(): Map<string, number> {
    const last = new Map<string, number>();
    for (const ack of this.stats.acks.values()) {
      if (ack.seq > (last.get(ack.sessionKey) ?? 0)) last.set(ack.sessionKey, ack.seq);
    }
    return last;
  }

  private async loop(writer: number, intervalMs: number, offsetMs: number): Promise<void> {
    let next = performance.now() + offsetMs;
    for (let n = 1; this.running; n++) {
      await sleep(Math.max(0, next - performance.now()));
      if (!this.running) return;
      const { random } = this.options;
      const sessionKey = this.sessionKeys[Math.floor(random() * this.sessionKeys.length)]!;
      const clientMessageId = `w${writer}-${n}`;
      const role = random() < 0.5 ? 'user' : 'assistant';
      const content = `${clientMessageId}: ${FILLER.slice(0, 40 + Math.floor(random() * (FILLER.length - 40)))}`;
      await this.append({ clientMessageId, sessionKey, role, content });
      next += intervalMs;
      const now = performance.now();
      if (next < now) {
        const behind = Math.ceil((now - next) / intervalMs);
        this.stats.skippedSlots += behind;
        next += behind * intervalMs;
      }
    }
  }

  private async append(input: Input): Promise<void> {
    const started = performance.now();
    const answer = await this.answer(input);
    if (!answer) return;
    const { stored } = answer;
    if (stored.role !== input.role || stored.content !== input.content) {
      this.stats.failures.push(`${input.clientMessageId}: the ack holds another message`);
    }
    this.stats.acks.set(input.clientMessageId, {
      ...input,
      seq: stored.seq,
      replayed: answer.replayed,
      attempts: answer.attempts,
      latencyMs: performance.now() - started,
    });
    if (this.options.random() < this.options.resendShare) await this.resend(input, stored.seq);
  }

  /** The same append again, as by a client that lost the answer: a replay of what is stored. */
  private async resend(input: Input, seq: number): Promise<void> {
    this.stats.resends++;
    const again = await this.answer(input);
    if (!again) return;
    const { stored } = again;
    if (
      again.replayed &&
      stored.seq === seq &&
      stored.role === input.role &&
      stored.content === input.content
    ) {
      this.stats.resendsReplayed++;
    } else {
      this.stats.failures.push(
        `${input.clientMessageId}: sent again, answered ${JSON.stringify(again)} rather than a replay of seq ${seq}`,
      );
    }
  }

  /** Posts the append until the server answers it (retrying while it is down or draining); null on failure. */
  private async answer(input: Input): Promise<Answer | null> {
    for (let attempts = 1; ; attempts++) {
      const outcome = await postGraphql(this.url(), APPEND, { input });
      if (outcome.kind === 'answer' && outcome.status === 200) {
        const result = (outcome.body.data as { appendMessage?: Record<string, never> } | undefined)
          ?.appendMessage as
          | {
              __typename: string;
              replayed?: boolean;
              appendedMessage?: { seq: number; role: string; content: string };
              code?: string;
            }
          | undefined;
        if (result?.__typename === 'AppendMessagePayload' && result.appendedMessage) {
          return { stored: result.appendedMessage, replayed: result.replayed === true, attempts };
        }
        if (result?.code !== 'UNAVAILABLE') {
          this.stats.failures.push(`${input.clientMessageId}: ${JSON.stringify(outcome.body).slice(0, 500)}`);
          return null;
        }
      } else if (outcome.kind === 'answer' && outcome.status !== 503) {
        this.stats.failures.push(
          `${input.clientMessageId}: HTTP ${outcome.status} ${JSON.stringify(outcome.body).slice(0, 500)}`,
        );
        return null;
      }
      // down or draining: the same clientMessageId again, after a short pause
      this.stats.retries++;
      if (attempts >= MAX_ATTEMPTS) {
        this.stats.failures.push(`${input.clientMessageId}: no answer after ${attempts} attempts`);
        return null;
      }
      await sleep(100 + Math.floor(this.options.random() * 200));
    }
  }
}
