/**
 * Text that is not Unicode, through a real server on every backend: request bytes that are not
 * UTF-8 (`ED A0 80 FF`: an encoded surrogate, then a byte UTF-8 never uses) in a message's
 * content or in a key, over HTTP POST (declared length and chunked, split anywhere), server-sent
 * events and a GET query string, are refused with 400 INVALID_UTF8 and nothing is stored (the
 * graphql-ws side, close 1007, is in ws-frames.test.ts); lone surrogates sent as JSON escapes
 * (`"\ud800"`), which no store can write as UTF-8, are refused as INVALID over HTTP, SSE and
 * graphql-ws. Valid multi-byte text split across chunks goes through: the check is the decoder's,
 * not a byte filter.
 */

import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendKind } from '../../src/backends/open-backend.js';
import { openWsClient } from '../helpers/live-client.js';
import { BACKEND_KINDS, type KindServer, serveKind } from '../helpers/serve-kind.js';
import type { Json } from '../helpers/server.js';

const BAD = Buffer.from([0xed, 0xa0, 0x80, 0xff]);
const APPEND = (key: string, content: string) =>
  `{"query":"mutation($k: String!, $c: String!) { appendMessage(input: {sessionKey: $k, role: \\"user\\", content: $c}) { __typename ... on Error { code } } }","variables":{"k":"${key}","c":"${content}"}}`;

/** The body of an append, with `insert` spliced in at `%` (in the key or the content). */
function body(template: string, insert: Buffer): Buffer {
  const at = template.indexOf('%');
  return Buffer.concat([Buffer.from(template.slice(0, at)), insert, Buffer.from(template.slice(at + 1))]);
}

/** POSTs raw bytes in the given chunks (chunked when more than one, else with a Content-Length). */
function postRaw(
  url: string,
  chunks: Buffer[],
  accept = 'application/json',
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept };
    if (chunks.length === 1) headers['content-length'] = String(chunks[0]!.length);
    const req = httpRequest(url, { method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    (async () => {
      for (const chunk of chunks) {
        req.write(chunk);
        // each chunk its own write on the wire: wait for it to be flushed
        await new Promise<void>((done) => req.write('', () => done()));
      }
      req.end();
    })().catch(reject);
  });
}

function codeOf(text: string): string | undefined {
  const parsed = JSON.parse(text) as { errors?: Array<{ extensions?: { code?: string } }> };
  return parsed.errors?.[0]?.extensions?.code;
}

describe.each(BACKEND_KINDS)('invalid UTF-8 on %s', (kind: BackendKind) => {
  let s: KindServer;
  beforeAll(async () => {
    s = await serveKind(kind);
  });
  afterAll(() => s.close());

  const stored = async () => (await s.server.backend.sessions({ first: 100 })).items.map((i) => i.key);

  it.each([
    ['content', APPEND('utf8_content', 'a%b')],
    ['key', APPEND('k%', 'x')],
  ])('refuses bad bytes in the %s with 400 INVALID_UTF8 and stores nothing', async (_, template) => {
    const whole = body(template, BAD);
    const at = whole.indexOf(BAD);
    for (const chunks of [
      [whole],
      // chunked, the bad sequence split between two chunks
      [whole.subarray(0, at + 2), whole.subarray(at + 2)],
    ]) {
      const res = await postRaw(s.url, chunks);
      expect(res.status).toBe(400);
      expect(codeOf(res.text)).toBe('INVALID_UTF8');
    }
    // the same body as server-sent events
    const sse = await postRaw(s.url, [whole], 'text/event-stream');
    expect(sse.status).toBe(400);
    expect(sse.text).toContain('INVALID_UTF8');
    // the key alone: 0xFF
    const key = await postRaw(s.url, [body(APPEND('k%', 'x'), Buffer.from([0xff]))]);
    expect(codeOf(key.text)).toBe('INVALID_UTF8');
    expect(await stored()).toEqual([]);
  });

  it('refuses a body cut off inside a character, and a GET query string that is not UTF-8', async () => {
    const cut = await postRaw(s.url, [
      Buffer.concat([Buffer.from('{"query":"{ __typename }"}'), Buffer.from([0xc3])]),
    ]);
    expect(cut.status).toBe(400);
    expect(codeOf(cut.text)).toBe('INVALID_UTF8');

    const get = await fetch(
      `${s.url}?query=${encodeURIComponent('{ session(key: "k')}%FF")%20%7B%20key%20%7D%20%7D`,
    );
    expect(get.status).toBe(400);
    expect(codeOf(await get.text())).toBe('INVALID_UTF8');
    const fine = await fetch(
      `${s.url}?query=${encodeURIComponent('{ session(key: "k')}%C3%A9")%20%7B%20key%20%7D%20%7D`,
    );
    expect(fine.status).toBe(200);
    expect(await fine.json()).toEqual({ data: { session: null } });
  });

  it('stores valid multi-byte text split between chunks, exactly', async () => {
    const whole = body(APPEND('utf8_split', 'a%b'), Buffer.from('é🙂', 'utf8'));
    const at = whole.indexOf(Buffer.from('🙂', 'utf8'));
    const res = await postRaw(s.url, [
      whole.subarray(0, at + 1),
      whole.subarray(at + 1, at + 3),
      whole.subarray(at + 3),
    ]);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text).data.appendMessage.__typename).toBe('AppendMessagePayload');
    expect((await s.server.backend.messages('utf8_split')).items.map((m) => m.content)).toEqual(['aé🙂b']);
  });

  it('refuses lone surrogates sent as JSON escapes as INVALID, over HTTP, SSE and graphql-ws', async () => {
    const cases = [
      APPEND('lone_content', 'a\\ud800b'),
      APPEND('lone\\udc00key', 'x'),
      APPEND('lone_tail', 'x\\ud83d'),
    ];
    for (const template of cases) {
      for (const accept of ['application/json', 'text/event-stream']) {
        const res = await postRaw(s.url, [Buffer.from(template)], accept);
        expect(res.status).toBe(200);
        expect(res.text).toMatch(/"code":"INVALID"/);
      }
      const ws = openWsClient(s.url);
      try {
        const { query, variables } = JSON.parse(template) as { query: string; variables: Json };
        const sub = ws.subscribe(query, variables);
        await sub.ended;
        expect(sub.results[0]?.data?.appendMessage).toEqual({
          __typename: 'InvalidInputError',
          code: 'INVALID',
        });
      } finally {
        await ws.close();
      }
    }
    expect((await stored()).filter((key) => key.startsWith('lone'))).toEqual([]);
  });
});
