/**
 * A request body of a type yoga does not read (text/plain, application/xml, none at all) gets 415
 * with a GraphQL error saying what is accepted, instead of yoga's empty 415: every refused
 * request tells the client why in the same shape.
 */

import type { Plugin } from 'graphql-yoga';

export const ACCEPTED_MEDIA_TYPES = 'application/json (a query may also come as a GET with query parameters)';

export function useUnsupportedMediaType(): Plugin {
  return {
    onRequestParse({ request, requestParser, endResponse, fetchAPI }) {
      if (requestParser) return;
      const got = request.headers.get('content-type');
      const body = {
        errors: [
          {
            message: `a GraphQL request must be sent as ${ACCEPTED_MEDIA_TYPES}; got ${got === null ? 'no content type' : JSON.stringify(got.slice(0, 100))}`,
            extensions: { code: 'UNSUPPORTED_MEDIA_TYPE' },
          },
        ],
      };
      endResponse(
        new fetchAPI.Response(JSON.stringify(body), {
          status: 415,
          headers: { 'content-type': 'application/json; charset=utf-8' },
        }),
      );
    },
  };
}
