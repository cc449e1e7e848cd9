/**
 * The dashboard's only way to the server, the public GraphQL API: queries over HTTP (fetch) and
 * live feeds over graphql-ws, both on `/graphql`, both carrying the token (an `Authorization:
 * Bearer` header; `{ token }` in `connection_init`).
 *
 * A live feed here does not give up on what passes: when its socket drops or the server ends it
 * (FEED_OVERFLOW, UNAVAILABLE, shutdown), it subscribes again after a short backoff, with variables
 * read anew, so a feed resumes from the last cursor it received. A refused or revoked token (close
 * 4403, UNAUTHENTICATED) waits for a new one and reconnects with it. Any other error (FORBIDDEN,
 * INVALID, ...) would only repeat: the feed stops and says why.
 */

import { type Client, createClient } from 'graphql-ws/client';
import type { TokenGate } from './token-gate.js';

/** graphql-ws close code for a refused `connection_init` (`Forbidden` in src/transport/close-codes.ts). */
const FORBIDDEN = 4_403;
/** @default 250 // ms before the first retry; doubled per failure up to RETRY_MAX_MS */
const RETRY_BASE_MS = 250;
/** @default 5_000 // ms */
const RETRY_MAX_MS = 5_000;
/** Error codes that end a feed for a reason that passes: subscribing again is the remedy. */
const TRANSIENT_CODES = new Set(['FEED_OVERFLOW', 'UNAVAILABLE', 'INTERNAL_SERVER_ERROR']);

export interface GraphQLErrorShape {
  message: string;
  extensions?: { code?: string };
}

/** A query answered with errors and no usable data. */
export class GraphQLRequestError extends Error {
  override readonly name = 'GraphQLRequestError';
  constructor(readonly errors: readonly GraphQLErrorShape[]) {
    super(errors.map((e) => e.message).join('; '));
  }
}

export type ConnectionStatus = 'connecting' | 'live' | 'offline';

export interface LiveHandlers<T> {
  next(data: T): void;
  /**
   * The feed was subscribed again (after a reconnect or an ended feed), called once the socket is
   * acknowledged. A feed without a cursor (the session list) missed what happened meanwhile:
   * refetch here.
   */
  resubscribed?(): void;
  /** The server refused the feed for good (FORBIDDEN, INVALID, ...); it is not retried. */
  failed?(message: string): void;
}

export interface GraphQLClient {
  query<T>(document: string, variables?: Record<string, unknown>): Promise<T>;
  /**
   * Follows a subscription until the returned function is called.
   * @param variables read at every (re)subscription: return the latest cursor from it
   */
  live<T>(document: string, variables: () => Record<string, unknown>, handlers: LiveHandlers<T>): () => void;
  /** Calls `listener` now and whenever the WebSocket connects or drops. */
  onStatus(listener: (status: ConnectionStatus) => void): void;
}

export function createGraphQLClient(options: { endpoint: URL; tokens: TokenGate }): GraphQLClient {
  const { endpoint, tokens } = options;
  const wsUrl = new URL(endpoint);
  wsUrl.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:';

  let status: ConnectionStatus = 'connecting';
  const listeners = new Set<(status: ConnectionStatus) => void>();
  const setStatus = (next: ConnectionStatus) => {
    status = next;
    for (const listener of listeners) listener(next);
  };
  // the token the current socket was opened with, to tell a refusal of it from a stale one
  let socketToken: string | null = null;
  const ws: Client = createClient({
    url: wsUrl.href,
    connectionParams: () => {
      socketToken = tokens.current();
      return socketToken === null ? {} : { token: socketToken };
    },
    // retries are ours (live() below): graphql-ws would resubscribe with the variables of the
    // first subscription, and so resume from a stale cursor
    retryAttempts: 0,
    lazy: true,
    on: {
      connecting: () => setStatus('connecting'),
      connected: () => setStatus('live'),
      closed: () => setStatus('offline'),
    },
  });

  async function query<T>(document: string, variables?: Record<string, unknown>): Promise<T> {
    for (;;) {
      const token = tokens.current();
      const response = await fetch(endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/graphql-response+json, application/json',
          ...(token !== null && { authorization: `Bearer ${token}` }),
        },
        body: JSON.stringify({ query: document, variables }),
      });
      const body = (await response.json().catch(() => ({}))) as {
        data?: T | null;
        errors?: GraphQLErrorShape[];
      };
      const unauthenticated = body.errors?.some((e) => e.extensions?.code === 'UNAUTHENTICATED') ?? false;
      if (response.status === 401 || unauthenticated) {
        await tokens.ask(token);
        continue;
      }
      if (body.data == null) {
        throw new GraphQLRequestError(body.errors ?? [{ message: `HTTP ${response.status}` }]);
      }
      return body.data;
    }
  }

  /**
   * Runs `then` once the socket is acknowledged: at once when it is, else at its next connection. A
   * refetch that pairs with a resubscription must not run while the server is still away.
   */
  function whenConnected(then: () => void): void {
    if (status === 'live') {
      then();
      return;
    }
    const off = ws.on('connected', () => {
      off();
      then();
    });
  }

  function live<T>(
    document: string,
    variables: () => Record<string, unknown>,
    handlers: LiveHandlers<T>,
  ): () => void {
    let stopped = false;
    let failures = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let unsubscribe = () => {};

    const subscribe = (again: boolean) => {
      if (stopped) return;
      let current = true;
      const retry = (reason: unknown) => {
        if (!current || stopped) return;
        current = false;
        const errors = Array.isArray(reason) ? (reason as GraphQLErrorShape[]) : [];
        const code = errors[0]?.extensions?.code;
        if ((isCloseEvent(reason) && reason.code === FORBIDDEN) || code === 'UNAUTHENTICATED') {
          void tokens.ask(socketToken).then(() => {
            // a socket still open with the old token keeps its old identity: replace it
            if (socketToken !== tokens.current()) ws.terminate();
            subscribe(true);
          });
          return;
        }
        if (errors.length > 0 && !TRANSIENT_CODES.has(code ?? '')) {
          handlers.failed?.(errors.map((e) => e.message).join('; '));
          return;
        }
        const wait = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** failures) + Math.random() * RETRY_BASE_MS;
        failures += 1;
        timer = setTimeout(() => subscribe(true), wait);
      };
      const stop = ws.subscribe<T>(
        { query: document, variables: variables() },
        {
          next: (result) => {
            if (!current) return;
            if (result.data) {
              failures = 0;
              handlers.next(result.data as T);
            } else if (result.errors) {
              retry(result.errors);
            }
          },
          error: retry,
          // the server ended the feed (shutting down): it goes on elsewhere or later
          complete: () => retry(undefined),
        },
      );
      unsubscribe = () => {
        current = false;
        stop();
      };
      if (again) {
        whenConnected(() => {
          if (current) handlers.resubscribed?.();
        });
      }
    };

    subscribe(false);
    return () => {
      stopped = true;
      clearTimeout(timer);
      unsubscribe();
    };
  }

  return {
    query,
    live,
    onStatus(listener) {
      listeners.add(listener);
      listener(status);
    },
  };
}

function isCloseEvent(value: unknown): value is { code: number; reason: string } {
  return typeof value === 'object' && value !== null && 'code' in value && 'reason' in value;
}
