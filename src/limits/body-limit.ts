/**
 * The largest HTTP request body, in bytes: over it the server answers 413 with a GraphQL error
 * (BODY_TOO_LARGE) instead of reading on. A declared Content-Length is refused before the body is
 * read; a body without one (chunked) is counted as it streams and refused at the first byte over.
 * Replaces yoga's own check (`maxRequestBodySize`), whose error says neither limit nor size.
 */

import { GraphQLError } from 'graphql';
import type { FetchAPI, Plugin } from 'graphql-yoga';
import { LimitCode, limitError } from './limit-error.js';

const TOO_LARGE = { status: 413 } as const;
const BAD_REQUEST = { status: 400 } as const;
/** One non-negative integer; anything else (a list, a sign) is how request smuggling starts. */
const CONTENT_LENGTH = /^\d+$/;

function tooLarge(limit: number, actual?: number) {
  const message =
    actual === undefined
      ? `the request body is over ${limit} bytes; the limit is ${limit}`
      : `the request body is ${actual} bytes; the limit is ${limit}`;
  return limitError(LimitCode.BodyTooLarge, message, limit, actual, TOO_LARGE);
}

/**
 * A copy of `request` whose body fails with BODY_TOO_LARGE past `limit` bytes. The request may be
 * Node's own or whatwg-node's ponyfill, and a stream pipes only through its own kind of transform.
 */
function capped(request: Request, limit: number, fetchAPI: FetchAPI): Request {
  const body = request.body;
  if (!body) return request;
  const Transform = body instanceof ReadableStream ? globalThis.TransformStream : fetchAPI.TransformStream;
  let read = 0;
  const counted = body.pipeThrough(
    new Transform<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        read += chunk.byteLength;
        if (read > limit) controller.error(tooLarge(limit));
        else controller.enqueue(chunk);
      },
    }),
  );
  return new fetchAPI.Request(request.url, {
    method: request.method,
    headers: request.headers,
    signal: request.signal,
    body: counted,
    // @ts-expect-error Node's fetch needs it for a streamed body; lib.dom does not declare it
    duplex: 'half',
  });
}

/**
 * @param maxBytes the largest body accepted; pass yoga `maxRequestBodySize: false` with it
 */
export function useRequestBodyLimit(maxBytes: number): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      const declared = request.headers.get('content-length');
      if (declared !== null) {
        if (!CONTENT_LENGTH.test(declared)) {
          throw new GraphQLError('the Content-Length header is not one whole number', {
            extensions: { code: 'BAD_REQUEST', http: BAD_REQUEST },
          });
        }
        if (Number(declared) > maxBytes) throw tooLarge(maxBytes, Number(declared));
      }
      if (!requestParser || !request.body) return;
      const parse = requestParser;
      setRequestParser((req) => parse(capped(req, maxBytes, fetchAPI)));
    },
  };
}
