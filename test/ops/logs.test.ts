/**
 * Structured logs: every line logged while a request is served carries its request id, over HTTP
 * (the sane incoming `x-request-id`, else a fresh one, echoed in the response) and for each
 * graphql-ws operation (its own id, plus the connection's). The server logs at debug level here,
 * so yoga's own lines and the per-request line are among those checked, and one storage call
 * fails unexpectedly, so the masked error's line is too.
 */

import { Writable } from 'node:stream';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { SessionBackend } from '../../src/backends/backend.js';
import { createLogger } from '../../src/logger.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Line {
  level: number;
  msg: string;
  reqId?: string;
  connectionId?: string;
  err?: { message: string; stack: string };
}

const lines: Line[] = [];
const destination = new Writable({
  write(chunk, _encoding, done) {
    for (const text of String(chunk).split('\n')) if (text) lines.push(JSON.parse(text) as Line);
    done();
  },
});

/** `sessions` fails the way a broken store would: an error no client may see. */
const failingSessions = (real: SessionBackend): SessionBackend =>
  new Proxy(real, {
    get: (target, property, receiver) =>
      property === 'sessions'
        ? async () => {
            throw new Error('disk on fire: sector 7');
          }
        : Reflect.get(target, property, receiver)?.bind?.(target),
  });

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer('sqlite', {
    logger: createLogger({ level: 'debug', destination }),
    wrap: failingSessions,
  });
});
afterAll(() => t.close());

/** The lines logged while `work` ran (nothing else is in flight). */
async function linesOf<T>(work: () => Promise<T>): Promise<{ result: T; logged: Line[] }> {
  const from = lines.length;
  const result = await work();
  return { result, logged: lines.slice(from) };
}

const post = (headers: Record<string, string>, query: string) =>
  fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body: JSON.stringify({ query }),
  });

describe('request ids in the logs', () => {
  it('keeps a sane incoming x-request-id, echoes it, and puts it on every line of the request', async () => {
    const { result, logged } = await linesOf(() =>
      post({ 'x-request-id': 'trace-42.a:b' }, 'query Broken { sessions { edges { cursor } } }'),
    );
    expect(result.headers.get('x-request-id')).toBe('trace-42.a:b');
    const body = (await result.json()) as { errors: Array<{ message: string }> };
    expect(body.errors[0]!.message).toBe('Unexpected error.');

    expect(logged.length).toBeGreaterThanOrEqual(3);
    for (const line of logged) expect(line.reqId, JSON.stringify(line)).toBe('trace-42.a:b');
    const failure = logged.find((line) => line.level === 50);
    expect(failure?.err?.message).toBe('disk on fire: sector 7');
    expect(failure?.err?.stack).toContain('disk on fire');
    expect(logged.some((line) => line.msg === 'request done')).toBe(true);
  });

  it('replaces a missing or unsafe request id with a fresh one, on the response and every line', async () => {
    const cases: Array<Record<string, string>> = [
      {},
      { 'x-request-id': 'has spaces and "quotes"' },
      { 'x-request-id': 'x'.repeat(129) },
    ];
    for (const headers of cases) {
      const { result, logged } = await linesOf(() => post(headers, '{ __typename }'));
      const id = result.headers.get('x-request-id');
      expect(id).toMatch(UUID);
      expect(logged.length).toBeGreaterThanOrEqual(1);
      for (const line of logged) expect(line.reqId, JSON.stringify(line)).toBe(id);
    }
    const a = (await post({}, '{ __typename }')).headers.get('x-request-id');
    const b = (await post({}, '{ __typename }')).headers.get('x-request-id');
    expect(a).not.toBe(b);
  });

  it('gives each graphql-ws operation its own id, with its connection id from the upgrade request', async () => {
    const echoed: Array<string | string[] | undefined> = [];
    class TracedSocket extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols, { headers: { 'x-request-id': 'conn-7' } });
        this.once('upgrade', (response) => echoed.push(response.headers['x-request-id']));
      }
    }
    const client = createClient({
      url: t.url.replace(/^http/, 'ws'),
      webSocketImpl: TracedSocket,
      retryAttempts: 0,
    });
    const run = (query: string) =>
      linesOf(
        () =>
          new Promise<{ errors?: Array<{ message: string }> }>((resolve, reject) => {
            let result: { errors?: Array<{ message: string }> } = {};
            client.subscribe(
              { query },
              { next: (r) => (result = r as typeof result), error: reject, complete: () => resolve(result) },
            );
          }),
      );
    try {
      await run('{ __typename }');
      const first = await run('query Broken { sessions { edges { cursor } } }');
      const second = await run('query Broken { sessions { edges { cursor } } }');
      expect(first.result.errors?.[0]?.message).toBe('Unexpected error.');

      const ids = new Set<string>();
      for (const { logged } of [first, second]) {
        expect(
          logged.some((line) => line.level === 50 && line.err?.message === 'disk on fire: sector 7'),
        ).toBe(true);
        for (const line of logged) {
          expect(line.connectionId, JSON.stringify(line)).toBe('conn-7');
          expect(line.reqId, JSON.stringify(line)).toMatch(UUID);
        }
        ids.add(logged[0]!.reqId!);
        expect(new Set(logged.map((line) => line.reqId)).size).toBe(1);
      }
      expect(ids.size).toBe(2);
      // the upgrade's 101 response echoes the connection id (the lazy client reconnects per operation)
      expect(echoed.length).toBeGreaterThanOrEqual(1);
      for (const id of echoed) expect(id).toBe('conn-7');
    } finally {
      await client.dispose();
    }
  });
});
