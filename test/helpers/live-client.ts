/**
 * Real live clients for tests: graphql-ws's own client over a `ws` socket, and server-sent events
 * over fetch. Each subscription collects every result it receives and can wait for a condition.
 */

import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import type { Json } from './server.js';

export interface LiveResult {
  data?: Json;
  errors?: Array<{ message: string; extensions?: Record<string, Json> }>;
}

export interface LiveSubscription {
  /** Every result in arrival order. */
  readonly results: LiveResult[];
  /** The root field of every result that has data. */
  readonly events: Json[];
  /** Settles when the server completes the operation (resolves) or the connection fails (rejects). */
  readonly ended: Promise<void>;
  /** Resolves once `condition` holds on what arrived; rejects after `timeoutMs`. */
  waitFor(condition: (sub: LiveSubscription) => boolean, timeoutMs?: number): Promise<void>;
  /** Waits until at least `n` events arrived. */
  waitForEvents(n: number, timeoutMs?: number): Promise<Json[]>;
  stop(): void;
}

export function wsUrlOf(httpUrl: string): string {
  return httpUrl.replace(/^http/, 'ws');
}

/** A collector that the transports feed. */
function collector(rootField: () => string | undefined, stop: () => void) {
  const results: LiveResult[] = [];
  const events: Json[] = [];
  const waiters = new Set<() => void>();
  let settle!: { resolve: () => void; reject: (e: unknown) => void };
  const ended = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  ended.catch(() => {});
  let finished = false;
  const notify = () => {
    for (const waiter of [...waiters]) waiter();
  };
  const sub: LiveSubscription = {
    results,
    events,
    ended,
    waitFor(condition, timeoutMs = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (condition(sub)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          } else if (finished) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(
              new Error(`the subscription ended first; results: ${JSON.stringify(results).slice(0, 2_000)}`),
            );
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out; results: ${JSON.stringify(results).slice(-2_000)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async waitForEvents(n, timeoutMs) {
      await sub.waitFor((s) => s.events.length >= n, timeoutMs);
      return events.slice(0, n);
    },
    stop,
  };
  return {
    sub,
    next(result: LiveResult) {
      results.push(result);
      const field = rootField();
      if (result.data && field) events.push(result.data[field]);
      notify();
    },
    end(error?: unknown) {
      if (finished) return;
      finished = true;
      if (error === undefined) settle.resolve();
      else settle.reject(error);
      notify();
    },
  };
}

function rootFieldOf(query: string): string | undefined {
  return /\{\s*(\w+)/.exec(query)?.[1];
}

export interface WsClient {
  readonly client: Client;
  subscribe(query: string, variables?: Record<string, unknown>): LiveSubscription;
  close(): Promise<void>;
}

/** How a live client authenticates: the API token, when the server requires one. */
export interface LiveClientOptions {
  token?: string | undefined;
}

export function openWsClient(httpUrl: string, options: LiveClientOptions = {}): WsClient {
  const client = createClient({
    url: wsUrlOf(httpUrl),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: true,
    ...(options.token !== undefined && { connectionParams: { token: options.token } }),
  });
  return {
    client,
    subscribe(query, variables) {
      let unsubscribe = () => {};
      const c = collector(
        () => rootFieldOf(query),
        () => unsubscribe(),
      );
      unsubscribe = client.subscribe(
        { query, ...(variables && { variables }) },
        {
          next: (result) => c.next(result as LiveResult),
          error: (error) => c.end(error ?? new Error('error')),
          complete: () => c.end(),
        },
      );
      return c.sub;
    },
    close: async () => {
      await client.dispose();
    },
  };
}

/** One subscription as server-sent events (yoga's distinct-connections mode). */
export function subscribeSse(
  httpUrl: string,
  query: string,
  variables?: Record<string, unknown>,
  options: LiveClientOptions = {},
): LiveSubscription {
  const abort = new AbortController();
  const c = collector(
    () => rootFieldOf(query),
    () => abort.abort(),
  );
  (async () => {
    const response = await fetch(httpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        ...(options.token !== undefined && { authorization: `Bearer ${options.token}` }),
      },
      body: JSON.stringify({ query, variables }),
      signal: abort.signal,
    });
    if (!response.ok || !response.body) throw new Error(`SSE: HTTP ${response.status}`);
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (\w+)$/m.exec(block)?.[1];
        const data = block
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).trimStart())
          .join('\n');
        if (event === 'next') c.next(JSON.parse(data) as LiveResult);
        if (event === 'complete') {
          c.end();
          abort.abort();
          return;
        }
      }
    }
    c.end();
  })().catch((error: unknown) => c.end(abort.signal.aborted ? undefined : error));
  return c.sub;
}
