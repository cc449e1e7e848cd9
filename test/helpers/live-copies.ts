/**
 * A client's copy of live sessions, for tests that compare it with the store: graphql-ws
 * subscribers of `sessionEvents(fromStart: true)` and `sessionActivity` on a real server, each
 * keeping the copy a client would (a SessionReset refetches; with `resume`, a feed ended with
 * UNAVAILABLE is subscribed again from the last cursor received), and the store read back over
 * HTTP. Shared by the PostgreSQL instance and outage tests.
 */

import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { type Json, postGraphQL } from './server.js';

const SESSION_EVENTS = `subscription ($key: String!, $after: String, $fromStart: Boolean) {
  sessionEvents(sessionKey: $key, after: $after, fromStart: $fromStart) {
  __typename
  ... on LiveEvent { cursor }
  ... on MessageAppended { message { seq content } }
  ... on MessageRemoved { seq }
  ... on SessionReset { session { lastSeq } }
} }`;

const SESSION_ACTIVITY = `subscription { sessionActivity { kind sessionKey session { name messageCount lastSeq } } }`;

const MESSAGES = `query ($key: String!, $after: String) { session(key: $key) {
  messages(first: 1000, after: $after) { edges { cursor node { seq content } } pageInfo { hasNextPage } } } }`;
const SESSIONS = `query ($after: String) { sessions(first: 1000, after: $after) {
  edges { cursor node { key name messageCount lastSeq } } pageInfo { hasNextPage } } }`;

export async function gql(
  url: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<Json> {
  const r = await postGraphQL(url, query, variables);
  if (r.errors) throw new Error(JSON.stringify(r.errors));
  return r.data;
}

export interface Message {
  seq: number;
  content: string;
}

export async function storedMessages(url: string, key: string): Promise<Message[]> {
  const out: Message[] = [];
  let after: string | null = null;
  for (;;) {
    const session: Json = (await gql(url, MESSAGES, { key, after })).session;
    if (!session) return out;
    const { edges, pageInfo } = session.messages;
    for (const edge of edges) out.push(edge.node);
    if (!pageInfo.hasNextPage) return out;
    after = edges.at(-1).cursor;
  }
}

export type Summary = { name: string | null; messageCount: number; lastSeq: number | null };

export async function storedSessions(url: string): Promise<Map<string, Summary>> {
  const out = new Map<string, Summary>();
  let after: string | null = null;
  for (;;) {
    const { edges, pageInfo }: Json = (await gql(url, SESSIONS, { after })).sessions;
    for (const { node } of edges) {
      out.set(node.key, { name: node.name, messageCount: node.messageCount, lastSeq: node.lastSeq });
    }
    if (!pageInfo.hasNextPage) return out;
    after = edges.at(-1).cursor;
  }
}

/** Wakes waiters whenever something a condition looks at changed. */
export class Signal {
  private waiters = new Set<() => void>();
  notify(): void {
    for (const wake of [...this.waiters]) wake();
  }
  until(condition: () => boolean, describe: () => string, timeoutMs = 60_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!condition()) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`not reached: ${describe()}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }
}

/** One instance's subscribers: a copy of each session's messages, and of the session list. */
export class Subscribers {
  readonly copies = new Map<string, Message[]>();
  readonly list = new Map<string, Summary>();
  readonly problems: string[] = [];
  /** MessageAppended events received, per session. */
  readonly appended = new Map<string, number>();
  /**
   * Seqs delivered by MessageAppended per session since its last reset (seqs are never reused on
   * PostgreSQL): one delivered twice without a reset in between is a problem.
   */
  private readonly delivered = new Map<string, Set<number>>();
  resets = 0;
  /** Feeds ended with UNAVAILABLE and subscribed again from their last cursor (with `resume`). */
  resumes = 0;
  private readonly client: Client;
  /** Per session: the cursor of the last event applied. */
  private readonly cursors = new Map<string, string>();
  private readonly stops: Array<() => void> = [];
  /** Per session: events waiting for the previous one to be applied (a reset refetches). */
  private readonly chains = new Map<string, Promise<void>>();
  /** Sessions whose copy was refetched: events the refetch already covered come after it. */
  private readonly refetched = new Set<string>();

  constructor(
    readonly url: string,
    private readonly signal: Signal,
    /** Subscribe again from the last cursor when a feed ends with UNAVAILABLE; else that is a problem. */
    private readonly options: { resume?: boolean } = {},
  ) {
    this.client = createClient({
      url: url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
    });
  }

  followList(): void {
    this.subscribe(SESSION_ACTIVITY, {}, (data) => {
      const { kind, sessionKey, session } = data.sessionActivity;
      if (kind === 'DELETED') this.list.delete(sessionKey);
      else this.list.set(sessionKey, session);
    });
  }

  follow(key: string): void {
    this.copies.set(key, []);
    this.followFrom(key, { fromStart: true });
  }

  private followFrom(key: string, position: { fromStart: true } | { after: string }): void {
    const enqueue = (work: () => Promise<void>) => {
      const next = (this.chains.get(key) ?? Promise.resolve()).then(work);
      this.chains.set(key, next);
      return next;
    };
    this.subscribe(
      SESSION_EVENTS,
      { key, ...position },
      (data) => enqueue(() => this.apply(key, data.sessionEvents)),
      // as a client does: once every event received is applied, on from the last cursor
      () =>
        void enqueue(async () => {
          this.resumes++;
          const after = this.cursors.get(key);
          this.followFrom(key, after === undefined ? { fromStart: true } : { after });
        }),
    );
  }

  private async apply(key: string, event: Json): Promise<void> {
    const copy = this.copies.get(key)!;
    const last = copy.at(-1);
    const lenient = this.refetched.has(key);
    switch (event.__typename) {
      case 'MessageAppended': {
        this.appended.set(key, (this.appended.get(key) ?? 0) + 1);
        const delivered = this.delivered.get(key) ?? new Set<number>();
        this.delivered.set(key, delivered);
        if (delivered.has(event.message.seq)) {
          this.problems.push(`${key}: ${event.message.seq} delivered twice`);
        }
        delivered.add(event.message.seq);
        if (last && event.message.seq <= last.seq) {
          if (!lenient) this.problems.push(`${key}: appended ${event.message.seq} after ${last.seq}`);
        } else copy.push(event.message);
        break;
      }
      case 'MessageRemoved':
        if (last?.seq === event.seq) copy.pop();
        else if (!lenient || copy.some((m) => m.seq === event.seq)) {
          this.problems.push(`${key}: removed ${event.seq}, last ${last?.seq}`);
        }
        break;
      case 'SessionReset':
        this.resets++;
        this.refetched.add(key);
        this.delivered.set(key, new Set());
        this.copies.set(key, await storedMessages(this.url, key));
        break;
      case 'SessionDeleted':
        this.copies.set(key, []);
        break;
    }
    if (event.cursor !== undefined) this.cursors.set(key, event.cursor);
  }

  private subscribe(
    query: string,
    variables: Record<string, unknown>,
    next: (data: Json) => unknown,
    unavailable?: () => void,
  ): void {
    let ended = false;
    /** Whether `errors` end the feed with UNAVAILABLE, and this subscriber resumes from it. */
    const resumed = (errors: unknown): boolean => {
      if (!this.options.resume || !unavailable || !Array.isArray(errors) || errors.length === 0) return false;
      if (!errors.every((e: Json) => e?.extensions?.code === 'UNAVAILABLE')) return false;
      if (!ended) unavailable();
      ended = true;
      return true;
    };
    const stop = this.client.subscribe(
      { query, variables },
      {
        next: (result) => {
          if (resumed(result.errors)) return;
          if (result.errors) {
            this.problems.push(`${JSON.stringify(variables)}: ${JSON.stringify(result.errors)}`);
            this.signal.notify();
            return;
          }
          void Promise.resolve(next(result.data as Json)).then(
            () => this.signal.notify(),
            (error: unknown) => {
              this.problems.push(String(error));
              this.signal.notify();
            },
          );
        },
        error: (error) => {
          if (resumed(error)) return;
          this.problems.push(`${JSON.stringify(variables)} ended: ${String(error)}`);
          this.signal.notify();
        },
        complete: () => {},
      },
    );
    this.stops.push(stop);
  }

  async close(): Promise<void> {
    for (const stop of this.stops) stop();
    await this.client.dispose();
  }
}
