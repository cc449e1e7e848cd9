/**
 * The Redis the tests use: SESSIONGRAPH_TEST_REDIS_URL, or the local server on 127.0.0.1:6379.
 * No skip when it is down: a test that needs it fails.
 *
 * Some tests restart that server. Test files run in parallel, so every file that talks to Redis
 * holds `lockRedis()` for its whole run: a restart never lands in another file's test.
 */

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';

export const TEST_REDIS_URL = process.env.SESSIONGRAPH_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

const { hostname: HOST, port: PORT } = new URL(TEST_REDIS_URL);
const cli = (...args: string[]) =>
  execFileSync('redis-cli', ['-h', HOST, '-p', PORT || '6379', ...args], {
    encoding: 'utf8',
    timeout: 10_000,
    stdio: ['ignore', 'pipe', 'ignore'],
  });

/** The exact command CI starts Redis with (.ci/run). */
const START = [
  '--daemonize',
  'yes',
  '--bind',
  '127.0.0.1',
  '-::1',
  '--port',
  '6379',
  '--save',
  '',
  '--appendonly',
  'no',
  '--dir',
  '/var/lib/redis',
  '--logfile',
  '/var/log/redis/ci.log',
];

export function redisAnswers(): boolean {
  try {
    return cli('ping').trim() === 'PONG';
  } catch {
    return false;
  }
}

async function waitFor(up: boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (redisAnswers() !== up) {
    if (Date.now() > deadline)
      throw new Error(`Redis did not ${up ? 'come up' : 'go down'} in ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Fails (never skips) when the test Redis does not answer: `.ci/run` starts it. */
export function requireRedis(): void {
  if (!redisAnswers())
    throw new Error(`Redis is not reachable at ${TEST_REDIS_URL} (start it, or run .ci/run)`);
}

/** Whether this process stopped the server (and has not started it again). */
let stoppedHere = false;

/** Starts the server (the CI command) unless it answers already: after a test stopped it. */
export async function ensureRedisRunning(): Promise<void> {
  stoppedHere = false;
  if (redisAnswers()) return;
  mkdirSync('/var/lib/redis', { recursive: true });
  mkdirSync('/var/log/redis', { recursive: true });
  execFileSync('redis-server', START, { timeout: 10_000 });
  await waitFor(true, 10_000);
}

/** `shutdown nosave`, then nothing: every connection drops and stays down until ensureRedisRunning. */
export async function stopRedis(): Promise<void> {
  stoppedHere = true;
  try {
    cli('shutdown', 'nosave');
  } catch {
    // redis-cli reports the dropped connection as an error
  }
  await waitFor(false, 10_000);
}

/** For teardown: starts the server again if this process stopped it, whatever happened since. */
export async function restoreRedis(): Promise<void> {
  if (stoppedHere) await ensureRedisRunning();
}

/** A Redis restart as an operator does it. */
export async function restartRedis(downMs = 0): Promise<void> {
  try {
    await stopRedis();
    if (downMs > 0) await sleep(downMs);
  } finally {
    await ensureRedisRunning();
  }
}

/** A plain client for tests (publishing foreign payloads, PUBSUB introspection). Caller quits it. */
export function testRedisClient(): Redis {
  return new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
}

const LOCK = join(tmpdir(), 'sessiongraph-test-redis.lock');

function holderAlive(): boolean {
  try {
    const pid = Number(readFileSync(join(LOCK, 'pid'), 'utf8'));
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // No pid file (yet) counts as dead too: lockRedis waits a second before it takes over.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Waits until no other test process uses Redis, then holds it; returns the release function.
 * A lock whose holder died is taken over.
 */
export async function lockRedis(timeoutMs = 600_000): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  let staleSince: number | null = null;
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, 'pid'), String(process.pid));
      return () => rmSync(LOCK, { recursive: true, force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    if (holderAlive()) staleSince = null;
    else if (staleSince === null) staleSince = Date.now();
    else if (Date.now() - staleSince > 1_000) rmSync(LOCK, { recursive: true, force: true });
    if (Date.now() > deadline) throw new Error('another test process held the Redis lock too long');
    await sleep(100);
  }
}

/**
 * For a test file that stops, restarts or partitions Redis: holds the lock for the whole file
 * (requiring Redis up front), and at the end brings Redis back and lets go.
 */
export function holdRedisForThisFile(): void {
  let release: () => void = () => {};
  beforeAll(async () => {
    release = await lockRedis();
    requireRedis();
  }, 620_000);
  afterAll(async () => {
    try {
      await restoreRedis();
    } finally {
      release();
    }
  }, 30_000);
}
