/**
 * The HTTP request body's guards, checked as it streams, before anything parses it:
 * - its size: over the largest, in bytes, the server answers 413 with a GraphQL error
 *   (BODY_TOO_LARGE) instead of reading on. A declared Content-Length is refused before the body is
 *   read; a body without one (chunked) is counted as it streams and refused at the first byte over.
 *   Replaces yoga's own check (`maxRequestBodySize`), whose error says neither limit nor size.
 * - its encoding: a body that is not valid UTF-8 (JSON is UTF-8, RFC 8259), or a GET request whose
 *   percent-encoded query string is not, is refused with 400 INVALID_UTF8 and nothing runs. yoga
 *   would decode the bad bytes as U+FFFD and a mutation would store the altered text with 200.
 */

import { isUtf8 } from 'node:buffer';
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

function invalidUtf8(where: string) {
  return new GraphQLError(`the request ${where} is not valid UTF-8; nothing was run`, {
    extensions: { code: LimitCode.InvalidUtf8, http: BAD_REQUEST },
  });
}

/** Whether a URL's query string (ASCII, as URLs are) percent-decodes to valid UTF-8. */
function queryIsUtf8(search: string): boolean {
  if (!search.includes('%')) return true;
  const bytes: number[] = [];
  for (let i = 0; i < search.length; i++) {
    const hex = search[i] === '%' ? search.slice(i + 1, i + 3) : '';
    if (/^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(search.charCodeAt(i));
    }
  }
  return isUtf8(Uint8Array.from(bytes));
}

/**
 * A copy of `request` whose body fails with BODY_TOO_LARGE past `limit` bytes, and with
 * INVALID_UTF8 at the first byte that cannot be UTF-8 (or a sequence cut off at the end). The
 * request may be Node's own or whatwg-node's ponyfill, and a stream pipes only through its own
 * kind of transform.
 */
function capped(request: Request, limit: number, fetchAPI: FetchAPI): Request {
  const body = request.body;
  if (!body) return request;
  const Transform = body instanceof ReadableStream ? globalThis.TransformStream : fetchAPI.TransformStream;
  let read = 0;
  // fatal: throws at bad bytes; streaming: a character split between chunks is whole again
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const counted = body.pipeThrough(
    new Transform<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        read += chunk.byteLength;
        if (read > limit) return controller.error(tooLarge(limit));
        try {
          utf8.decode(chunk, { stream: true });
        } catch {
          return controller.error(invalidUtf8('body'));
        }
        controller.enqueue(chunk);
      },
      flush(controller) {
        try {
          utf8.decode();
        } catch {
          controller.error(invalidUtf8('body'));
        }
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
      if (request.method === 'GET' && !queryIsUtf8(new URL(request.url).search)) {
        throw invalidUtf8('query string');
      }
      if (!requestParser || !request.body) return;
      const parse = requestParser;
      setRequestParser((req) => parse(capped(req, maxBytes, fetchAPI)));
    },
  };
}
