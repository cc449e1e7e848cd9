/**
 * The access matrix: every operation of the schema x every caller (admin, writer and reader tokens
 * confined to a key prefix, no token, a wrong token) x a session inside / outside that prefix x
 * every transport (HTTP, server-sent events, graphql-ws), through one real server on SQLite. The
 * expected outcome comes from the scope rules (src/auth/principal.ts); each case checks the real
 * answer, and that a refused write left the session as it was.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeGlobalID } from '@pothos/plugin-relay';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTokenSpecs } from '../../src/auth/token-spec.js';
import { encodePosition, START_POSITION } from '../../src/events/message-cursor.js';
import { createLogger } from '../../src/logger.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { closeCodeOf, type Reply, requestOnce, type Transport } from '../helpers/auth-clients.js';
import {
  type LiveResult,
  type LiveSubscription,
  openWsClient,
  subscribeSse,
  type WsClient,
} from '../helpers/live-client.js';
import { testConfig } from '../helpers/server.js';

const SECRETS = {
  admin: 'admin-secret-0123456789',
  writer: 'writer-secret-0123456789',
  reader: 'reader-secret-0123456789',
} as const;
const PREFIX_IN = 'team-a/';
const PREFIX_OUT = 'team-b/';

type Who = 'admin' | 'writer' | 'reader' | 'none' | 'bad';
type Where = 'in' | 'out';
type Outcome = 'allowed' | 'hidden' | 'forbidden' | 'unauthenticated';
type Needs = 'read' | 'write' | 'admin';

const WHO: readonly Who[] = ['admin', 'writer', 'reader', 'none', 'bad'];
const TOKEN: Record<Who, string | undefined> = {
  ...SECRETS,
  none: undefined,
  bad: 'not-a-configured-secret-42',
};

/** A fresh session for one case: its key, a word only its message holds, and its message's seq. */
interface Target {
  key: string;
  word: string;
  seq: number;
  /** Another fresh session inside the prefix (sessionActivity's control). */
  companion: string;
}

interface Operation {
  name: string;
  kind: 'query' | 'mutation' | 'subscription';
  needs: Needs;
  /** Reads, queries and mutations: the document and variables for the target. */
  document?: (t: Target) => { query: string; variables: Record<string, unknown> };
  /** What a result means (queries and mutations). */
  judge?: (data: Json) => Outcome;
}

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by assertions
type Json = any;

const mutationJudge = (field: string) => (data: Json) => {
  const typename: string = data[field].__typename;
  if (typename.endsWith('Payload')) return 'allowed';
  if (typename === 'ForbiddenError') return 'forbidden';
  throw new Error(`unexpected ${field} result ${JSON.stringify(data[field])}`);
};

const mutation = (field: string, input: (t: Target) => Record<string, unknown>, needs: Needs): Operation => ({
  name: field,
  kind: 'mutation',
  needs,
  document: (t) => ({
    query: `mutation M($input: ${field[0]!.toUpperCase()}${field.slice(1)}Input!) {
      ${field}(input: $input) { __typename ... on Error { code } } }`,
    variables: { input: input(t) },
  }),
  judge: mutationJudge(field),
});

const OPERATIONS: readonly Operation[] = [
  {
    name: 'session',
    kind: 'query',
    needs: 'read',
    document: (t) => ({
      query: 'query($k: String!) { session(key: $k) { key messageCount } }',
      variables: { k: t.key },
    }),
    judge: (data) => (data.session ? 'allowed' : 'hidden'),
  },
  {
    name: 'sessions',
    kind: 'query',
    needs: 'read',
    document: (t) => ({
      query: 'query($p: String!) { sessions(filter: { keyPrefix: $p }) { edges { node { key } } } }',
      variables: { p: t.key },
    }),
    judge: (data) => (data.sessions.edges.length > 0 ? 'allowed' : 'hidden'),
  },
  {
    name: 'node(Session)',
    kind: 'query',
    needs: 'read',
    document: (t) => ({
      query: 'query($id: ID!) { node(id: $id) { id ... on Session { key } } }',
      variables: { id: encodeGlobalID('Session', t.key) },
    }),
    judge: (data) => (data.node ? 'allowed' : 'hidden'),
  },
  {
    name: 'node(Message)',
    kind: 'query',
    needs: 'read',
    document: (t) => ({
      query: 'query($id: ID!) { node(id: $id) { id ... on Message { content session { key } } } }',
      variables: { id: encodeGlobalID('Message', `${t.seq}:${t.key}`) },
    }),
    judge: (data) => (data.node ? 'allowed' : 'hidden'),
  },
  {
    name: 'search',
    kind: 'query',
    needs: 'read',
    document: (t) => ({
      query: 'query($q: String!) { search(query: $q) { edges { node { message { sessionKey } } } } }',
      variables: { q: t.word },
    }),
    judge: (data) => (data.search.edges.length > 0 ? 'allowed' : 'hidden'),
  },
  {
    name: 'backend',
    kind: 'query',
    needs: 'read',
    document: () => ({ query: '{ backend { kind } }', variables: {} }),
    judge: (data) => (typeof data.backend.kind === 'string' ? 'allowed' : 'hidden'),
  },
  mutation('appendMessage', (t) => ({ sessionKey: t.key, role: 'user', content: 'more' }), 'write'),
  mutation(
    'appendMessages',
    (t) => ({ sessionKey: t.key, messages: [{ role: 'user', content: 'more' }] }),
    'write',
  ),
  mutation('removeLastMessage', (t) => ({ sessionKey: t.key }), 'write'),
  mutation('renameSession', (t) => ({ sessionKey: t.key, name: 'renamed' }), 'write'),
  mutation('compactSession', (t) => ({ sessionKey: t.key }), 'admin'),
  mutation('deleteSession', (t) => ({ sessionKey: t.key }), 'admin'),
  mutation('cleanupStaleSessions', () => ({ ttlHours: 1_000_000 }), 'admin'),
  { name: 'sessionEvents', kind: 'subscription', needs: 'read' },
  { name: 'sessionActivity', kind: 'subscription', needs: 'read' },
];

/** The scope rules, as a table: what `who` gets for an operation on a session `where`. */
function expected(op: Operation, who: Who, where: Where): Outcome {
  if (who === 'none' || who === 'bad') return 'unauthenticated';
  if (who === 'admin') return 'allowed';
  if (op.needs === 'admin' || (op.needs === 'write' && who === 'reader')) return 'forbidden';
  // no session key involved: the prefix does not matter
  if (op.name === 'backend' || op.name === 'cleanupStaleSessions') return 'allowed';
  if (where === 'in') return 'allowed';
  return op.kind === 'mutation' || op.name === 'sessionEvents' ? 'forbidden' : 'hidden';
}

interface Case {
  op: Operation;
  who: Who;
  where: Where;
  transport: Transport;
  expect: Outcome;
}

const CASES: Case[] = OPERATIONS.flatMap((op) =>
  WHO.flatMap((who) =>
    (['in', 'out'] as const).flatMap((where) =>
      (op.kind === 'subscription' ? (['sse', 'ws'] as const) : (['http', 'sse', 'ws'] as const)).map(
        (transport): Case => ({ op, who, where, transport, expect: expected(op, who, where) }),
      ),
    ),
  ),
);

let server: RunningServer;
let dataDir: string;
const wsClients = new Map<Who, WsClient>();
let caseNumber = 0;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'sg-access-'));
  const tokens = parseTokenSpecs([
    `admin:${SECRETS.admin}:admin`,
    `writer:${SECRETS.writer}:write:${PREFIX_IN}`,
    `reader:${SECRETS.reader}:read:${PREFIX_IN}`,
  ]);
  server = await startServer(testConfig('sqlite', dataDir, { tokens }), {
    logger: createLogger({ level: 'silent' }),
  });
  for (const who of WHO) wsClients.set(who, openWsClient(server.url, { token: TOKEN[who] }));
});

afterAll(async () => {
  for (const client of wsClients.values()) await client.close();
  await server?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function freshTarget(where: Where): Promise<Target> {
  const n = ++caseNumber;
  const key = `${where === 'in' ? PREFIX_IN : PREFIX_OUT}case-${n}`;
  const word = `marker${n}x`;
  const { messages } = await server.backend.append(key, [{ role: 'user', content: `${word} hello` }]);
  const companion = `${PREFIX_IN}companion-${n}`;
  return { key, word, seq: messages[0]!.seq, companion };
}

/** One query or mutation over graphql-ws: its first result, or the 4403 close. */
function wsOnce(client: Client, query: string, variables: Record<string, unknown>): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let done = false;
    const dispose = client.subscribe(
      { query, variables },
      {
        next: (result) => {
          done = true;
          resolve({ kind: 'result', result: result as LiveResult });
          dispose();
        },
        error: (error) => {
          if (closeCodeOf(error) === 4403) resolve({ kind: 'unauthenticated' });
          else reject(error instanceof Error ? error : new Error(JSON.stringify(error)));
        },
        complete: () => {
          if (!done) reject(new Error('completed without a result'));
        },
      },
    );
  });
}

async function runOnce(c: Case, target: Target): Promise<Outcome> {
  const { query, variables } = c.op.document!(target);
  const token = TOKEN[c.who];
  const reply =
    c.transport === 'ws'
      ? await wsOnce(wsClients.get(c.who)!.client, query, variables)
      : await requestOnce(server.url, c.transport, token, query, variables);
  if (reply.kind === 'unauthenticated') return 'unauthenticated';
  expect(reply.result.errors, JSON.stringify(reply.result.errors)).toBeUndefined();
  return c.op.judge!(reply.result.data);
}

function subscribe(c: Case, query: string, variables: Record<string, unknown>): LiveSubscription {
  return c.transport === 'ws'
    ? wsClients.get(c.who)!.subscribe(query, variables)
    : subscribeSse(server.url, query, variables, { token: TOKEN[c.who] });
}

/** Waits for the first result or the end: the outcome of a refused subscription, or null. */
async function refusal(sub: LiveSubscription): Promise<Outcome | null> {
  await sub
    .waitFor((s) => s.results.length > 0)
    .catch(async () => {
      await sub.ended;
    });
  const error = sub.results[0]?.errors?.[0];
  if (error?.extensions?.code === 'FORBIDDEN') return 'forbidden';
  if (error) throw new Error(`unexpected error ${JSON.stringify(error)}`);
  return null;
}

async function runSubscription(c: Case, target: Target): Promise<Outcome> {
  if (c.op.name === 'sessionEvents') {
    const sub = subscribe(
      c,
      'subscription($k: String!, $after: String) { sessionEvents(sessionKey: $k, after: $after) { __typename } }',
      { k: target.key, after: encodePosition(START_POSITION) },
    );
    try {
      return (await refusal(sub)) ?? (sub.events[0]?.__typename === 'MessageAppended' ? 'allowed' : 'hidden');
    } catch (err) {
      if (unauthenticated(err)) return 'unauthenticated';
      throw err;
    } finally {
      sub.stop();
    }
  }
  // sessionActivity: inside, filtered to the target; outside, unfiltered with a control session
  // inside the prefix: once a control event arrives after a write to the target, an allowed
  // target event would have arrived before it (one subscriber's feed keeps the write order)
  const filter = c.where === 'in' ? { keyPrefix: target.key } : null;
  const sub = subscribe(
    c,
    'subscription($f: SessionActivityFilter) { sessionActivity(filter: $f) { sessionKey } }',
    {
      f: filter,
    },
  );
  const seen = (key: string) => sub.events.filter((e) => e.sessionKey === key).length;
  const marker = c.where === 'in' ? target.key : target.companion;
  try {
    // until the subscription is live
    while (seen(marker) === 0) {
      if (sub.results.some((r) => r.errors)) return (await refusal(sub)) ?? 'hidden';
      await server.backend.append(target.key, [{ role: 'user', content: 'ping' }]);
      if (c.where === 'out')
        await server.backend.append(target.companion, [{ role: 'user', content: 'ping' }]);
      await Promise.race([sub.waitFor((s) => s.events.length > 0, 200).catch(() => {}), sub.ended]);
    }
    if (c.where === 'in') return 'allowed';
    const before = seen(target.key);
    const controls = seen(target.companion);
    await server.backend.append(target.key, [{ role: 'user', content: 'probe' }]);
    await server.backend.append(target.companion, [{ role: 'user', content: 'probe' }]);
    await sub.waitFor(() => seen(target.companion) > controls);
    return seen(target.key) > before || before > 0 ? 'allowed' : 'hidden';
  } catch (err) {
    if (unauthenticated(err)) return 'unauthenticated';
    throw err;
  } finally {
    sub.stop();
  }
}

function unauthenticated(err: unknown): boolean {
  return closeCodeOf(err) === 4403 || (err instanceof Error && err.message === 'SSE: HTTP 401');
}

describe('access matrix: operation x caller x prefix x transport', () => {
  it('covers every root field of the schema', () => {
    const fields = [
      ...Object.keys(server.yoga.getEnveloped().schema.getQueryType()!.getFields()),
      ...Object.keys(server.yoga.getEnveloped().schema.getMutationType()!.getFields()),
      ...Object.keys(server.yoga.getEnveloped().schema.getSubscriptionType()!.getFields()),
    ];
    const covered = new Set(OPERATIONS.map((op) => op.name.replace(/\(.*/, '')));
    expect(fields.filter((f) => !covered.has(f))).toEqual([]);
  });

  it.each(
    CASES.map(
      (c) =>
        [`${c.op.name} by ${c.who}, ${c.where} the prefix, over ${c.transport}: ${c.expect}`, c] as const,
    ),
  )('%s', async (_title, c) => {
    const target = await freshTarget(c.where);
    const before = await server.backend.session(target.key);
    const outcome =
      c.op.kind === 'subscription' ? await runSubscription(c, target) : await runOnce(c, target);
    expect(outcome).toBe(c.expect);
    if (c.op.kind === 'mutation' && outcome !== 'allowed') {
      // a refused write stored nothing
      expect(await server.backend.session(target.key)).toEqual(before);
    }
  });
});
