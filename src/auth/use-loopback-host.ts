/**
 * DNS rebinding: a page on another site can point its own host name at 127.0.0.1, and then its
 * requests to the loopback server are same-origin for the browser, so neither CORS nor the Origin
 * check stops them. Without tokens (loopback only), that would let any web page read and write
 * every session. So without tokens the API answers only requests addressed to a loopback name
 * (`Host: localhost`, `127.0.0.1`, `[::1]`), which a rebound page cannot send.
 */

import type { Plugin } from 'graphql-yoga';
import { ErrorCode } from '../errors.js';
import { isLoopbackHost } from './origin-policy.js';

/** Whether a Host header names this machine's loopback interface. */
export function isLoopbackHostHeader(host: string | null | undefined): boolean {
  if (!host) return false;
  try {
    return isLoopbackHost(new URL(`http://${host}`).hostname);
  } catch {
    return false;
  }
}

/** @param enforced false with tokens (they guard every request) or with --insecure */
export function useLoopbackHost(graphqlEndpoint: string, enforced: () => boolean): Plugin {
  return {
    onRequest({ request, url, endResponse, fetchAPI }) {
      if (url.pathname !== graphqlEndpoint || !enforced()) return;
      if (isLoopbackHostHeader(request.headers.get('host'))) return;
      const message =
        'Without tokens this server answers only requests addressed to a loopback name (localhost, 127.0.0.1, [::1]).';
      endResponse(
        new fetchAPI.Response(
          JSON.stringify({ errors: [{ message, extensions: { code: ErrorCode.Forbidden } }] }),
          {
            status: 403,
            headers: { 'content-type': 'application/json; charset=utf-8' },
          },
        ),
      );
    },
  };
}
