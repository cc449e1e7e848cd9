/**
 * Who may do what, wired for one server: the token registry, the per-token connection cap, the
 * browser origin policy, and the CORS settings built from them. The request gate
 * (src/transport/request-gate.ts) checks every HTTP request and upgrade with them before yoga or ws
 * sees it; resolvers get the backend and the feeds as the caller's principal may use them
 * (scoped-backend.ts, scoped-feed.ts).
 */

import type { Logger } from 'pino';
import type { SessionBackend } from '../backends/backend.js';
import type { Config } from '../config.js';
import type { Feed } from '../events/feed.js';
import { type ConnectionLimiter, createConnectionLimiter } from './connection-limiter.js';
import { createOriginPolicy, isLoopbackHostHeader, type OriginPolicy } from './origin-policy.js';
import { OPEN_PRINCIPAL, type Principal, type Scope } from './principal.js';
import { scopeBackend } from './scoped-backend.js';
import { scopeFeed } from './scoped-feed.js';
import { createTokenRegistry, type TokenRegistry } from './token-registry.js';

export type AccessConfig = Pick<
  Config,
  'tokens' | 'tokensFile' | 'corsOrigins' | 'maxConnectionsPerToken' | 'insecure'
>;

/** Why a WebSocket was refused, as its close code's name (src/transport/close-codes.ts). */
export type WsRefusal = 'Forbidden' | 'TooManyConnections';

export interface AccessControl {
  readonly registry: TokenRegistry;
  readonly limiter: ConnectionLimiter;
  readonly origins: OriginPolicy;
  /**
   * Whether a request addressed to this Host header may proceed: without tokens (and without
   * --insecure), only loopback names. DNS rebinding: a page on another site can point its own host
   * name at 127.0.0.1, and then its requests to the loopback server are same-origin for the
   * browser, so neither CORS nor the Origin check stops them; but it cannot make the browser send
   * a loopback name as Host.
   */
  hostAllowed(host: string | null | undefined): boolean;
  /** yoga's `cors` option, from the same origin list as the WebSocket check. */
  cors(
    request: Request,
  ): { origin: string[] | string; credentials: boolean; allowedHeaders: string[] } | false;
  /**
   * The caller of an operation: the principal the gate or `connection_init` authenticated; without
   * one, everyone's when no token is configured, else no one's.
   */
  principalOf(authenticated: Principal | undefined): Principal;
  /** The backend and the feeds as the principal may use them. */
  scope(
    principal: Principal,
    deps: { backend: SessionBackend; feed: Feed },
  ): { backend: SessionBackend; feed: Feed };
  /**
   * Admits a WebSocket's `connection_init`: its principal, with the connection slot to release when
   * the socket closes, or why not.
   */
  admitSocket(
    payload: Readonly<Record<string, unknown>> | undefined,
  ): { principal: Principal; release: () => void } | { refused: WsRefusal; reason: string };
  close(): void;
}

export function createAccessControl(deps: { config: AccessConfig; logger: Logger }): AccessControl {
  const { config, logger } = deps;
  const registry = createTokenRegistry({ tokens: config.tokens, tokensFile: config.tokensFile, logger });
  const limiter = createConnectionLimiter(config.maxConnectionsPerToken);
  const origins = createOriginPolicy(config.corsOrigins);
  const isCurrent = (principal: Principal) => registry.isCurrent(principal);
  const loopbackOnly = () => !registry.required && !config.insecure;

  return {
    registry,
    limiter,
    origins,
    hostAllowed: (host) => !loopbackOnly() || isLoopbackHostHeader(host),
    cors(request) {
      const origin = request.headers.get('origin');
      if (!origins.allows(origin, request.headers.get('host'))) return false;
      return {
        origin: origin ?? '*',
        // bearer tokens travel in a header the page sets, never as cookies
        credentials: false,
        allowedHeaders: ['authorization', 'content-type', 'accept', 'x-request-id'],
      };
    },
    principalOf(authenticated) {
      if (!registry.required) return OPEN_PRINCIPAL;
      // a request the gate did not authenticate (none reaches an operation today) gets no rights
      return authenticated ?? NO_ONE;
    },
    scope(principal, { backend, feed }) {
      if (!registry.required) return { backend, feed };
      return {
        backend: scopeBackend(backend, principal),
        feed: scopeFeed(feed, principal, {
          isCurrent,
          limiter,
          lossyFileNames: backend.info().kind === 'jsonl',
        }),
      };
    },
    admitSocket(payload) {
      const token = payload?.token;
      const principal = registry.authenticate(typeof token === 'string' ? token : null);
      if (!principal) return { refused: 'Forbidden', reason: 'Forbidden' };
      if (!registry.required) return { principal, release: () => {} };
      const release = limiter.acquire(principal);
      if (!release)
        return { refused: 'TooManyConnections', reason: `Too many connections for token ${principal.name}` };
      return { principal, release };
    },
    close: () => registry.close(),
  };
}

/** Sees nothing and may write nothing: the principal of a request that somehow bypassed the check. */
const NO_ONE: Principal = Object.freeze({ name: 'nobody', scopes: new Set<Scope>(), prefix: '\u0000' });
