/**
 * HTTP and server-sent events: `Authorization: Bearer <secret>` names the caller. With tokens
 * configured, a request to the GraphQL endpoint without a known token is answered 401 with a
 * GraphQL error whose `extensions.code` is UNAUTHENTICATED, before anything parses or runs; CORS
 * preflights (OPTIONS) carry no token and pass. Each request's principal is kept for its context.
 */

import type { Plugin } from 'graphql-yoga';
import { ErrorCode } from '../errors.js';
import type { Principal } from './principal.js';
import type { TokenRegistry } from './token-registry.js';

export interface BearerAuth {
  plugin: Plugin;
  /** The principal of a request the plugin let through. */
  principalOf(request: Request): Principal | null;
}

export function createBearerAuth(registry: TokenRegistry, graphqlEndpoint: string): BearerAuth {
  const principals = new WeakMap<Request, Principal>();
  const principalOf = (request: Request): Principal | null =>
    principals.get(request) ?? registry.authenticate(bearerSecret(request.headers.get('authorization')));
  return {
    principalOf,
    plugin: {
      onRequest({ request, url, endResponse, fetchAPI }) {
        if (url.pathname !== graphqlEndpoint || request.method === 'OPTIONS') return;
        const principal = registry.authenticate(bearerSecret(request.headers.get('authorization')));
        if (principal) {
          principals.set(request, principal);
          return;
        }
        const message = request.headers.has('authorization')
          ? 'The bearer token is not valid.'
          : 'This server requires a token: send `Authorization: Bearer <token>`.';
        endResponse(
          new fetchAPI.Response(
            JSON.stringify({ errors: [{ message, extensions: { code: ErrorCode.Unauthenticated } }] }),
            {
              status: 401,
              headers: { 'content-type': 'application/json; charset=utf-8', 'www-authenticate': 'Bearer' },
            },
          ),
        );
      },
    },
  };
}

/** The secret of `Bearer <secret>` (scheme case-insensitive), or null. */
export function bearerSecret(header: string | null | undefined): string | null {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  return match ? match[1]! : null;
}
