/**
 * Cross-site request forgery: a page on another site can make a browser send a "simple" request
 * (a form post, a `text/plain` fetch) without asking the server first, and with no tokens on
 * loopback nothing else would stop it from writing. So a POST to the GraphQL endpoint must carry a
 * non-simple Content-Type (`application/json`, `application/graphql-response+json`): a browser sends
 * those cross-site only after a CORS preflight, which only the allowed origins pass. GET cannot
 * mutate (yoga refuses mutations over GET), and a cross-site page cannot read GET answers.
 */

import type { Plugin } from 'graphql-yoga';

/** Content types an HTML form (or a no-preflight fetch) can send. */
const SIMPLE_TYPES = new Set(['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain']);

export function useCsrfPrevention(graphqlEndpoint: string): Plugin {
  return {
    onRequest({ request, url, endResponse, fetchAPI }) {
      if (url.pathname !== graphqlEndpoint || request.method !== 'POST') return;
      const type = (request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== '' && !SIMPLE_TYPES.has(type)) return;
      const message =
        'POST requests must send `Content-Type: application/json`: a form or text/plain body could come from ' +
        'another site (CSRF).';
      endResponse(
        new fetchAPI.Response(
          JSON.stringify({ errors: [{ message, extensions: { code: 'UNSUPPORTED_MEDIA_TYPE' } }] }),
          {
            status: 415,
            headers: { 'content-type': 'application/json; charset=utf-8' },
          },
        ),
      );
    },
  };
}
