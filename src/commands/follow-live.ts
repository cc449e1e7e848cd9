/**
 * Follows one subscription across connection losses: a server restart, a network cut, or the
 * server ending the feed (FEED_OVERFLOW, UNAVAILABLE while shutting down). Each (re)connection
 * subscribes with the variables `variablesFor()` gives then, so a feed resumes from its last
 * cursor and prints nothing twice. Errors that retrying cannot fix (a bad cursor or key) end it.
 */

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { CloseCode } from '../transport/close-codes.js';

export interface FollowOptions {
  /** The GraphQL endpoint, http(s):// or ws(s)://. */
  url: string;
  query: string;
  /** The API token, sent in `connection_init`. @default none // a server without tokens */
  token?: string | undefined;
  /** Asked before every (re)subscription. */
  variablesFor: () => Record<string, unknown>;
  /** One event: the subscription's root field of a result. */
  onEvent: (event: Record<string, unknown>) => void;
  /** A connection was lost or refused (`null`: connected again). */
  onConnectionChange?: (problem: string | null) => void;
  signal: AbortSignal;
  /** @default 100 // ms before the first reconnection; doubles up to maxBackoffMs */
  minBackoffMs?: number;
  /** @default 2_000 // ms */
  maxBackoffMs?: number;
}

/** A failure that reconnecting will not fix. */
export class FollowError extends Error {
  override readonly name = 'FollowError';
}

/** Error codes after which subscribing again (from the last cursor) is the cure. */
const RESUMABLE = new Set(['FEED_OVERFLOW', 'UNAVAILABLE']);

type Result = {
  data?: Record<string, unknown> | null;
  errors?: ReadonlyArray<{ message: string; extensions?: unknown }>;
};

export function wsUrlOf(url: string): string {
  return url.replace(/^http(s?):/, 'ws$1:');
}

export function httpUrlOf(url: string): string {
  return url.replace(/^ws(s?):/, 'http$1:');
}

/** Resolves when `signal` aborts; rejects with FollowError on a failure retrying cannot fix. */
export async function followLive(options: FollowOptions): Promise<void> {
  const minBackoff = options.minBackoffMs ?? 100;
  const maxBackoff = options.maxBackoffMs ?? 2_000;
  let backoff = minBackoff;
  let lost: string | null = null;
  const connected = () => {
    backoff = minBackoff;
    if (lost !== null) options.onConnectionChange?.(null);
    lost = null;
  };

  while (!options.signal.aborted) {
    const client = createClient({
      url: wsUrlOf(options.url),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      lazy: true,
      keepAlive: 10_000,
      ...(options.token !== undefined && { connectionParams: { token: options.token } }),
      on: { connected },
    });
    const stop = () => void client.dispose();
    options.signal.addEventListener('abort', stop, { once: true });
    let problem = 'the server ended the subscription';
    try {
      const results = client.iterate({ query: options.query, variables: options.variablesFor() });
      for await (const result of results as AsyncIterable<Result>) {
        const error = result.errors?.[0];
        if (error) {
          const code = (error.extensions as { code?: string } | undefined)?.code;
          if (!code || !RESUMABLE.has(code)) throw new FollowError(error.message);
          problem = error.message;
          break;
        }
        const root = result.data && Object.values(result.data)[0];
        if (root && typeof root === 'object') options.onEvent(root as Record<string, unknown>);
      }
    } catch (err) {
      if (err instanceof FollowError) throw err;
      if (Array.isArray(err))
        throw new FollowError(err.map((e: { message?: string }) => e.message).join('; '));
      if ((err as { code?: unknown } | null)?.code === CloseCode.Forbidden) {
        throw new FollowError(
          options.token === undefined
            ? 'the server requires a token: pass --token or set SESSIONGRAPH_TOKEN'
            : 'the server refused the token',
        );
      }
      problem = describe(err);
    } finally {
      options.signal.removeEventListener('abort', stop);
      await client.dispose();
    }
    if (options.signal.aborted) return;
    if (lost === null) options.onConnectionChange?.(problem);
    lost = problem;
    await sleep(backoff, options.signal);
    backoff = Math.min(backoff * 2, maxBackoff);
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  const close = err as { code?: number; reason?: string; message?: string } | null;
  if (close?.code !== undefined)
    return `connection closed (${close.code}${close.reason ? ` ${close.reason}` : ''})`;
  return close?.message ?? 'connection failed';
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
