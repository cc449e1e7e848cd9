/**
 * One server instance on PostgreSQL, through a TCP proxy (tcp-proxy.ts), with seeded concurrent
 * writers on one session and graphql-ws subscribers of `sessionEvents(fromStart: true)`, while
 * (a) every connection of the instance is terminated from an admin connection and (b) a
 * database restart is played: every connection cut and new ones refused for a moment, then
 * accepted again. Writers retry UNAVAILABLE (and anything else that may not have answered) with
 * their clientMessageId, so nothing is stored twice; subscribers ended with UNAVAILABLE resume
 * from their last cursor, as a client does. At the end every subscriber's copy equals the store,
 * and no message reached one twice without a reset in between.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { type Message, Signal, Subscribers, storedMessages } from '../helpers/live-copies.js';
import {
  dropSchemas,
  TEST_DATABASE_URL,
  uniqueSchema,
  withAdminClient,
} from '../helpers/postgres-database.js';
import { prng } from '../helpers/prng.js';
import { type Json, postGraphQL, testConfig } from '../helpers/server.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const APPEND = `mutation ($key: String!, $id: String!, $messages: [NewMessageInput!]!) {
  appendMessages(input: { sessionKey: $key, clientMessageId: $id, messages: $messages }) {
    __typename ... on AppendMessagesPayload { replayed } ... on Error { code } } }`;
const REMOVE_LAST = `mutation ($key: String!) {
  removeLastMessage(input: { sessionKey: $key }) { __typename ... on Error { code } } }`;

const KEY = 'outage';
const WRITERS = 6;
const OPS_PER_WRITER = 40;
const SUBSCRIBERS = 3;
/** How long the played restart refuses connections. @default 1_500 // milliseconds */
const RESTART_MS = 1_500;

/** How long a writer waits before trying a write again. @default 50 // milliseconds */
const RETRY_MS = 50;

let server: RunningServer | null = null;
let proxy: TcpProxy | null = null;
let subscribers: Subscribers[] = [];
const schemas = new Set<string>();
const dirs: string[] = [];

afterEach(async () => {
  for (const s of subscribers) await s.close();
  subscribers = [];
  await server?.close();
  server = null;
  await proxy?.close();
  proxy = null;
});

afterAll(async () => {
  await dropSchemas(schemas);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * Sends a write until it is answered with anything but UNAVAILABLE (or a failure that may have
 * stored it or not: the clientMessageId makes the retry safe). Returns the payload and the
 * number of retries.
 */
async function writeUntilAnswered(
  url: string,
  query: string,
  variables: Record<string, unknown>,
): Promise<{ payload: Json; retries: number }> {
  for (let retries = 0; ; retries++) {
    const answer = await postGraphQL(url, query, variables).catch((error: unknown) => ({
      errors: [{ message: String(error) }],
      data: undefined,
    }));
    const payload = answer.data ? (Object.values(answer.data)[0] as Json) : null;
    if (!answer.errors && payload && payload.code !== 'UNAVAILABLE') return { payload, retries };
    if (retries > 2_000) throw new Error(`never answered: ${JSON.stringify(answer.errors ?? payload)}`);
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}

/** The pids of the instance's connections, named by the application_name of its database URL. */
async function instancePids(applicationName: string): Promise<number[]> {
  return withAdminClient(async (admin) => {
    const { rows } = await admin.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
      [applicationName],
    );
    return rows.map((r) => r.pid);
  });
}

describe('one PostgreSQL instance through dropped connections and a restart', () => {
  it('concurrent writers on one session: every subscriber, resuming from its cursor, ends with exactly the store', async () => {
    const seed = Number(process.env.SEED ?? Date.now() % 1_000_000);
    console.log(`postgres-outage seed ${seed}`);
    const random = prng(seed);
    const schema = uniqueSchema('sg_outage');
    schemas.add(schema);
    const dataDir = mkdtempSync(join(tmpdir(), 'sg-pg-outage-'));
    dirs.push(dataDir);
    proxy = await startTcpProxy(TEST_DATABASE_URL);
    const applicationName = `sessiongraph outage ${schema}`;
    const databaseUrl = new URL(proxy.url);
    databaseUrl.searchParams.set('application_name', applicationName);
    server = await startServer(
      testConfig('postgres', dataDir, {
        databaseUrl: databaseUrl.toString(),
        databaseSchema: schema,
        poolSize: 4,
      }),
      { logger: createLogger({ level: 'silent' }) },
    );
    const url = server.url;
    const signal = new Signal();
    for (let i = 0; i < SUBSCRIBERS; i++) {
      const s = new Subscribers(url, signal, { resume: true });
      subscribers.push(s);
      s.follow(KEY);
    }

    // drawn up front, so that the run replays from the seed
    const plans = Array.from({ length: WRITERS }, () =>
      Array.from({ length: OPS_PER_WRITER }, () => ({
        remove: random() < 0.2,
        size: 1 + Math.floor(random() * 3),
      })),
    );
    const total = WRITERS * OPS_PER_WRITER;
    let done = 0;
    let retries = 0;
    let replayed = 0;
    const faults: Array<{ at: number; run: () => Promise<void> }> = [
      {
        at: Math.floor(total * (0.2 + random() * 0.1)),
        run: async () => {
          const pids = await instancePids(applicationName);
          expect(pids.length).toBeGreaterThan(0);
          await withAdminClient((admin) =>
            admin.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]),
          );
          console.log(`terminated ${pids.length} connections`);
        },
      },
      {
        at: Math.floor(total * (0.55 + random() * 0.1)),
        run: async () => {
          proxy!.partition();
          // the played restart: refusing for a while is the fault itself, not a wait for an event
          await new Promise((resolve) => setTimeout(resolve, RESTART_MS));
          proxy!.heal();
          console.log(`restart played for ${RESTART_MS} ms`);
        },
      },
    ];
    const faultsDone: Promise<void>[] = [];
    const progress = () => {
      done++;
      while (faults.length > 0 && done >= faults[0]!.at) faultsDone.push(faults.shift()!.run());
    };

    await Promise.all(
      plans.map(async (plan, w) => {
        for (const [n, { remove, size }] of plan.entries()) {
          if (remove) {
            const answer = await writeUntilAnswered(url, REMOVE_LAST, { key: KEY });
            retries += answer.retries;
            // another writer's message may be the last one; the session may be empty at first
            expect(['RemoveLastMessagePayload', 'NotFoundError']).toContain(answer.payload.__typename);
          } else {
            const messages = Array.from({ length: size }, (_, m) => ({
              role: 'user',
              content: `w${w} op${n} m${m}`,
            }));
            const answer = await writeUntilAnswered(url, APPEND, { key: KEY, id: `w${w}-op${n}`, messages });
            retries += answer.retries;
            if (answer.payload.__typename === 'ConflictError') {
              // a retry of an append removed since by another writer: stored once, then removed
              expect(answer.retries).toBeGreaterThan(0);
            } else {
              expect(answer.payload.__typename).toBe('AppendMessagesPayload');
              if (answer.payload.replayed) replayed++;
            }
          }
          progress();
        }
      }),
    );
    await Promise.all(faultsDone);
    expect(faults).toEqual([]);
    // the faults reached the writers: some write was answered UNAVAILABLE or not at all
    expect(retries).toBeGreaterThan(0);

    const stored = await storedMessages(url, KEY);
    // nothing stored twice: each append's messages appear at most once
    const contents = stored.map((m) => m.content);
    expect(new Set(contents).size).toBe(contents.length);
    const differences = () =>
      subscribers.flatMap((s, i) => [
        ...s.problems.map((p) => `subscriber ${i}: ${p}`),
        ...(JSON.stringify(s.copies.get(KEY)) === JSON.stringify(stored)
          ? []
          : [`subscriber ${i}: copy ${seqs(s.copies.get(KEY))}, store ${seqs(stored)}`]),
      ]);
    await signal.until(
      () => differences().length === 0,
      () => differences().slice(0, 6).join('\n'),
      30_000,
    );
    expect(differences()).toEqual([]);
    console.log(
      `postgres-outage: ${stored.length} stored, ${retries} retries, ${replayed} replayed, ` +
        `resumes ${subscribers.map((s) => s.resumes).join(', ')}, resets ${subscribers.map((s) => s.resets).join(', ')}`,
    );
  }, 120_000);
});

function seqs(messages: Message[] | undefined): string {
  return JSON.stringify(messages?.map((m) => m.seq));
}
