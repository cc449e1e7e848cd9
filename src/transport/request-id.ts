/**
 * Request ids: the `x-request-id` a client or a proxy sent is kept when it is plain and short, so
 * one id follows a request through every hop; anything else (absent, too long, odd characters
 * that could forge log fields or headers) is replaced by a fresh UUID.
 */

import { randomUUID } from 'node:crypto';

export const REQUEST_ID_HEADER = 'x-request-id';

/** Letters, digits and `._:-`, 1 to 128 of them: what tracing systems and proxies send. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The id to log the request under: the sane incoming one, or a new one. */
export function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === 'string' && SANE_REQUEST_ID.test(header) ? header : randomUUID();
}
