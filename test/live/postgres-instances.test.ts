/**
 * Two server instances on one PostgreSQL schema, in one process (startServer, real HTTP and
 * graphql-ws on port 0): seeded random writers on both instances, and on both a graphql-ws
 * subscriber of `sessionEvents(fromStart: true)` per session and of `sessionActivity`. Each
 * subscriber keeps the copy a client would (a SessionReset refetches); at the end every copy must
 * equal the store. Without Redis (the instances hear each other through PostgreSQL's
 * notifications), also with the listening connections terminated mid-run; and with Redis, where
 * the notifications stay unheard and Redis carries the events as before. Redis is used, never
 * restarted.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { type RunningServer, startServer } from '../../src/server.js';
import {
  gql,
  type Message,
  Signal,
  Subscribers,
  storedMessages,
  storedSessions,
} from '../helpers/live-copies.js';
import {
  dropSchemas,
  TEST_DATABASE_URL,
  uniqueSchema,
  withAdminClient,
} from '../helpers/postgres-database.js';
import { prng } from '../helpers/prng.js';
import { requireRedis, TEST_REDIS_URL } from '../helpers/redis-server.js';
import { type Json, testConfig } from '../helpers/server.js';

const APPEND = `mutation ($key: String!, $messages: [NewMessageInput!]!) {
  appendMessages(input: { sessionKey: $key, messages: $messages }) { __typename ... on Error { code } } }`;
const REMOVE_LAST = `mutation ($key: String!) {
  removeLastMessage(input: { sessionKey: $key }) { __typename ... on Error { code } } }`;
const RENAME = `mutation ($key: String!, $name: String) {
  renameSession(input: { sessionKey: $key, name: $name }) { __typename ... on Error { code } } }`;
const COMPACT = `mutation ($key: String!) {
  compactSession(input: { sessionKey: $key }) { __typename ... on Error { code } } }`;
const DELETE = `mutation ($key: String!) {
  deleteSession(input: { sessionKey: $key }) { __typename ... on Error { code } } }`;
const CLEANUP = `mutation ($ttl: Float!) {
  cleanupStaleSessions(input: { ttlHours: $ttl }) { __typename ... on Error { code } } }`;

/** Errors a write may answer with in a random run: typed, storing nothing. */
const EXPECTED_CODES = new Set(['NOT_FOUND']);

async function write(url: string, query: string, variables: Record<string, unknown>): Promise<void> {
  const data = await gql(url, query, variables);
  const payload = Object.values(data)[0] as Json;
  if (payload.code !== undefined && !EXPECTED_CODES.has(payload.code)) {
    throw new Error(`unexpected ${payload.code}`);
  }
}

interface Instance {
  server: RunningServer;
  url: string;
  subscribers: Subscribers;
}

const schemas = new Set<string>();
const dirs: string[] = [];
let running: Instance[] = [];
/** Subscribers joining mid-run, closed with the instances. */
let joined: Subscribers[] = [];

afterEach(async () => {
  for (const subscribers of joined) await subscribers.close();
  joined = [];
  for (const instance of running) await instance.subscribers.close();
  await Promise.all(running.map((instance) => instance.server.close()));
  running = [];
});

afterAll(async () => {
  await dropSchemas(schemas);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function startInstances(
  schema: string,
  redisPrefix: string | null,
  signal: Signal,
): Promise<Instance[]> {
  schemas.add(schema);
  const dataDir = mkdtempSync(join(tmpdir(), 'sg-pg-instances-'));
  dirs.push(dataDir);
  const config = testConfig('postgres', dataDir, {
    databaseUrl: TEST_DATABASE_URL,
    databaseSchema: schema,
    poolSize: 4,
    redisUrl: redisPrefix === null ? null : TEST_REDIS_URL,
    redisPrefix: redisPrefix ?? 'sessiongraph',
  });
  const logger = createLogger({ level: 'silent' });
  for (let i = 0; i < 2; i++) {
    const server = await startServer(config, { logger });
    running.push({ server, url: server.url, subscribers: new Subscribers(server.url, signal) });
  }
  return running;
}

/** Renames a probe session on each instance until the other instance's session list shows it. */
async function untilHeardAcross(instances: Instance[], signal: Signal): Promise<void> {
  for (const [from, to] of [
    [instances[0]!, instances[1]!],
    [instances[1]!, instances[0]!],
  ] as const) {
    for (let i = 0; ; i++) {
      const name = `probe ${i}`;
      await write(from.url, RENAME, { key: 'probe', name });
      const heard = await signal
        .until(
          () => to.subscribers.list.get('probe')?.name === name,
          () => 'probe',
          250,
        )
        .then(
          () => true,
          () => false,
        );
      if (heard) break;
      if (i > 200) throw new Error('the instances never heard each other');
    }
  }
}

async function listenerPids(schema: string): Promise<number[]> {
  return withAdminClient(async (admin) => {
    const { rows } = await admin.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
      [`sessiongraph listen ${schema}`],
    );
    return rows.map((r) => r.pid);
  });
}

interface RunOptions {
  seed: number;
  signal: Signal;
  /** Called once with the share of operations done (0.25, 0.5, 0.75). */
  onProgress?: (share: number) => Promise<void>;
}

const WRITERS_PER_INSTANCE = 2;
const SESSIONS_PER_WRITER = 2;
const OPS_PER_WRITER = 60;

/**
 * Each writer owns its sessions and applies random writes to them in turn through its instance;
 * then one instance sweeps every session (cleanupStale) and restores one, and the writers append
 * again, re-creating sessions.
 */
async function run(instances: Instance[], options: RunOptions): Promise<Written> {
  const random = prng(options.seed);
  const keys: string[] = [];
  const appended = new Map<string, number>();
  const append = async (url: string, key: string, messages: unknown[]) => {
    await write(url, APPEND, { key, messages });
    appended.set(key, (appended.get(key) ?? 0) + messages.length);
  };
  const writers: Array<{ url: string; keys: string[] }> = [];
  instances.forEach((instance, i) => {
    for (let w = 0; w < WRITERS_PER_INSTANCE; w++) {
      const own = Array.from({ length: SESSIONS_PER_WRITER }, (_, s) => `gw_i${i}w${w}s${s}`);
      keys.push(...own);
      writers.push({ url: instance.url, keys: own });
    }
  });
  for (const instance of instances) for (const key of keys) instance.subscribers.follow(key);

  const total = writers.length * OPS_PER_WRITER;
  let done = 0;
  const marks = [0.25, 0.5, 0.75];
  const progress = async () => {
    done++;
    while (marks.length > 0 && done >= marks[0]! * total) {
      const share = marks.shift()!;
      await options.onProgress?.(share);
    }
  };
  // each writer's own sequence, drawn up front so that the run replays from the seed
  const plans = writers.map((writer) =>
    Array.from({ length: OPS_PER_WRITER }, (_, n) => {
      const key = writer.keys[Math.floor(random() * writer.keys.length)]!;
      const roll = random();
      const size = 1 + Math.floor(random() * 3);
      return { key, roll, size, n };
    }),
  );
  await Promise.all(
    writers.map(async (writer, w) => {
      for (const { key, roll, size, n } of plans[w]!) {
        const messages = Array.from({ length: size }, (_, m) => ({
          role: 'user',
          content: `w${w} op${n} m${m}`,
        }));
        if (roll < 0.7) await append(writer.url, key, messages);
        else if (roll < 0.8) await write(writer.url, REMOVE_LAST, { key });
        else if (roll < 0.88) await write(writer.url, RENAME, { key, name: `w${w} name ${n}` });
        else if (roll < 0.95) await write(writer.url, COMPACT, { key });
        else await write(writer.url, DELETE, { key });
        await progress();
      }
    }),
  );
  // Every session idle for a moment is swept by the second instance, one restored by an import.
  // Each phase is heard everywhere before the next writes the same sessions from the other
  // instance: events of one session from two instances at once are put in order by the
  // per-session ordering point, not by what this test covers.
  await write(instances[1]!.url, CLEANUP, { ttl: 1e-9 });
  await options.signal.until(
    () => instances.every((instance) => instance.subscribers.list.size === 0),
    () => 'the sweep heard everywhere',
  );
  await instances[1]!.server.backend.restoreSession!(keys[0]!, {
    name: 'imported',
    createdAt: '2020-01-02T03:04:05.000000+00:00',
    lastActivityAt: '2020-01-02T03:04:05.000000+00:00',
  });
  await options.signal.until(
    () => instances.every((instance) => instance.subscribers.list.get(keys[0]!)?.name === 'imported'),
    () => 'the import heard everywhere',
  );
  await Promise.all(
    writers.map(async (writer, w) => {
      for (const key of writer.keys) {
        const messages = [1, 2, 3].map((m) => ({ role: 'user', content: `w${w} again ${m}` }));
        await append(writer.url, key, messages);
      }
    }),
  );
  return { keys, appended };
}

const SHARED_SESSIONS = 3;
const SHARED_OPS_PER_WRITER = 50;

/**
 * Every writer, on either instance, appends to and removes the last message of the same few
 * sessions at once: each session's events come from both instances (its own writes published at
 * once, the other's heard later through the notifications) and must still reach every subscriber
 * in order.
 */
async function runShared(instances: Instance[], seed: number, signal: Signal): Promise<SharedWritten> {
  const random = prng(seed);
  const keys = Array.from({ length: SHARED_SESSIONS }, (_, s) => `sh_s${s}`);
  const appended = new Map<string, number>();
  for (const instance of instances) for (const key of keys) instance.subscribers.follow(key);
  const writers = instances.flatMap((instance) =>
    Array.from({ length: WRITERS_PER_INSTANCE }, () => instance.url),
  );
  // drawn up front, so that the run replays from the seed
  const plans = writers.map(() =>
    Array.from({ length: SHARED_OPS_PER_WRITER }, () => ({
      key: keys[Math.floor(random() * keys.length)]!,
      remove: random() < 0.3,
      size: 1 + Math.floor(random() * 3),
    })),
  );
  // halfway, a second subscriber per instance joins: its replay from the start races the writes
  const late: Follower[] = [];
  let done = 0;
  const halfway = (writers.length * SHARED_OPS_PER_WRITER) / 2;
  await Promise.all(
    writers.map(async (url, w) => {
      for (const [n, { key, remove, size }] of plans[w]!.entries()) {
        if (remove) await write(url, REMOVE_LAST, { key });
        else {
          const messages = Array.from({ length: size }, (_, m) => ({
            role: 'user',
            content: `w${w} op${n} m${m}`,
          }));
          await write(url, APPEND, { key, messages });
          appended.set(key, (appended.get(key) ?? 0) + messages.length);
        }
        if (++done === halfway) {
          for (const instance of instances) {
            const subscribers = new Subscribers(instance.url, signal);
            joined.push(subscribers);
            for (const k of keys) subscribers.follow(k);
            late.push({ url: instance.url, subscribers });
          }
        }
      }
    }),
  );
  return { keys, appended, late };
}

interface SharedWritten extends Written {
  /** The subscribers that joined mid-run. */
  late: Follower[];
}

/** Where a subscriber's copies live. */
interface Follower {
  url: string;
  subscribers: Subscribers;
}

interface Written {
  keys: string[];
  /** Messages appended per session over the whole run. */
  appended: Map<string, number>;
}

/**
 * Waits until every subscriber's copy equals the store, or fails saying where they differ.
 * `list`: the session lists too (false where two instances write one session at once: a list
 * change is a snapshot published as each write is heard, not put in order across instances).
 */
async function expectCopiesEqualStore(
  instances: readonly Follower[],
  written: Written,
  signal: Signal,
  { list = true }: { list?: boolean } = {},
): Promise<void> {
  const { keys } = written;
  const url = instances[0]!.url;
  const messages = new Map<string, Message[]>();
  for (const key of keys) messages.set(key, await storedMessages(url, key));
  const sessions = await storedSessions(url);
  const sessionsJson = JSON.stringify([...sessions].sort());
  const differences = () =>
    instances.flatMap((instance, i) => [
      ...instance.subscribers.problems.map((p) => `instance ${i}: ${p}`),
      ...keys
        .filter(
          (key) => JSON.stringify(instance.subscribers.copies.get(key)) !== JSON.stringify(messages.get(key)),
        )
        .map(
          (key) =>
            `instance ${i} ${key}: copy ${JSON.stringify(instance.subscribers.copies.get(key)?.map((m) => m.seq))}, ` +
            `store ${JSON.stringify(messages.get(key)?.map((m) => m.seq))}`,
        ),
      ...(!list || JSON.stringify([...instance.subscribers.list].sort()) === sessionsJson
        ? []
        : [
            `instance ${i} session list: ${JSON.stringify([...instance.subscribers.list].sort())}, store ${sessionsJson}`,
          ]),
    ]);
  await signal.until(
    () => differences().length === 0,
    () => differences().slice(0, 12).join('\n'),
    30_000,
  );
  expect(differences()).toEqual([]);
}

/** Without a reset, every subscriber received every message ever appended, each once. */
function expectEveryAppendDelivered(instances: Instance[], written: Written): void {
  for (const instance of instances) {
    expect(instance.subscribers.resets).toBe(0);
    expect(Object.fromEntries(instance.subscribers.appended)).toEqual(Object.fromEntries(written.appended));
  }
}

describe('two instances on one PostgreSQL schema without Redis', () => {
  it('every subscriber on either instance ends with exactly the store, with no reset', async () => {
    const seed = Number(process.env.SEED ?? Date.now() % 1_000_000);
    console.log(`postgres-instances seed ${seed}`);
    const signal = new Signal();
    const instances = await startInstances(uniqueSchema('sg_inst'), null, signal);
    for (const instance of instances) instance.subscribers.followList();
    await untilHeardAcross(instances, signal);
    const written = await run(instances, { seed, signal });
    await expectCopiesEqualStore(instances, written, signal);
    expectEveryAppendDelivered(instances, written);
  }, 120_000);

  it('writers on both instances writing the same sessions: every subscriber ends with exactly the store', async () => {
    const seed = Number(process.env.SEED ?? Date.now() % 1_000_000);
    console.log(`postgres-instances shared seed ${seed}`);
    const signal = new Signal();
    const instances = await startInstances(uniqueSchema('sg_inst_shared'), null, signal);
    for (const instance of instances) instance.subscribers.followList();
    await untilHeardAcross(instances, signal);
    const written = await runShared(instances, seed, signal);
    const followers = [...instances, ...written.late];
    expect(followers).toHaveLength(4);
    await expectCopiesEqualStore(followers, written, signal, { list: false });
    console.log(`resets with shared writers: ${followers.map((f) => f.subscribers.resets).join(', ')}`);
  }, 120_000);

  it('loses nothing when the listening connections are terminated mid-run', async () => {
    const seed = Number(process.env.SEED ?? Date.now() % 1_000_000);
    console.log(`postgres-instances seed ${seed}`);
    const signal = new Signal();
    const schema = uniqueSchema('sg_inst_drop');
    const instances = await startInstances(schema, null, signal);
    for (const instance of instances) instance.subscribers.followList();
    await untilHeardAcross(instances, signal);
    const terminated = new Set<number>();
    const written = await run(instances, {
      seed,
      signal,
      onProgress: async () => {
        const pids = await listenerPids(schema);
        expect(pids.length).toBeGreaterThan(0);
        for (const pid of pids) terminated.add(pid);
        await withAdminClient((admin) =>
          admin.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]),
        );
      },
    });
    await expectCopiesEqualStore(instances, written, signal);
    console.log(`resets after dropped connections: ${instances.map((i) => i.subscribers.resets).join(', ')}`);
    // both listen again, on new connections
    const now = await listenerPids(schema);
    expect(now).toHaveLength(2);
    for (const pid of now) expect(terminated.has(pid)).toBe(false);
  }, 120_000);
});

describe('two instances on one PostgreSQL schema with Redis', () => {
  it('every subscriber ends with exactly the store; the notifications are not listened to', async () => {
    requireRedis();
    const seed = Number(process.env.SEED ?? Date.now() % 1_000_000);
    console.log(`postgres-instances seed ${seed}`);
    const signal = new Signal();
    const schema = uniqueSchema('sg_inst_redis');
    const instances = await startInstances(schema, schema, signal);
    for (const instance of instances) instance.subscribers.followList();
    await untilHeardAcross(instances, signal);
    expect(await listenerPids(schema)).toEqual([]);
    const written = await run(instances, { seed, signal });
    await expectCopiesEqualStore(instances, written, signal);
    expectEveryAppendDelivered(instances, written);
  }, 120_000);
});
