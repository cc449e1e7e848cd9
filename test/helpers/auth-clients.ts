/**
 * Clients that send an API token the way the access contract says, over each transport, and tell
 * whether the server refused the caller before running anything (`unauthenticated`):
 * HTTP and SSE send `Authorization: Bearer <secret>` (401 UNAUTHENTICATED); graphql-ws sends
 * `{ token }` in connection_init (close 4403).
 */

import type { LiveResult } from './live-client.js';
import type { Json } from './server.js';

export type Transport = 'http' | 'sse' | 'ws';

/** What one operation got: its first result, or a refusal before it ran. */
export type Reply = { kind: 'result'; result: LiveResult } | { kind: 'unauthenticated' };

export function authHeaders(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

/** One query or mutation over plain HTTP, or as server-sent events (the first `next` event). */
export async function requestOnce(
  url: string,
  transport: 'http' | 'sse',
  token: string | undefined,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<Reply> {
  const abort = new AbortController();
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: transport === 'sse' ? 'text/event-stream' : 'application/json',
      ...authHeaders(token),
    },
    body: JSON.stringify({ query, variables }),
    signal: abort.signal,
  });
  if (response.status === 401) {
    const body = (await response.json()) as { errors: Array<{ extensions: Json }> };
    if (body.errors[0]?.extensions?.code !== 'UNAUTHENTICATED')
      throw new Error(`401 without UNAUTHENTICATED`);
    return { kind: 'unauthenticated' };
  }
  if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
  if (transport === 'http') return { kind: 'result', result: (await response.json()) as LiveResult };
  let buffer = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      const next = /(?:^|\n)event: next\ndata: (.*)\n\n/.exec(buffer);
      if (next) return { kind: 'result', result: JSON.parse(next[1]!) as LiveResult };
    }
  } finally {
    abort.abort();
  }
  throw new Error(`SSE ended without a result: ${buffer}`);
}

/** The close code a graphql-ws client reports when the server closed its socket. */
export function closeCodeOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}
