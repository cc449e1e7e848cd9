/**
 * The operating settings through the real `sessiongraph serve`: `/metrics` on by default, off with
 * `--no-metrics` or `SESSIONGRAPH_METRICS=off`, a bad value refused with exit code 2; the request
 * id echoed on every endpoint; a session TTL past the longest every backend can compute refused.
 */

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_TTL_HOURS } from '../../src/backends/validate.js';
import { EXIT_OK, EXIT_USAGE } from '../../src/commands/exit-codes.js';
import { spawnServe } from '../helpers/cli-serve.js';
import { parseServeArgs } from '../helpers/serve-config.js';

const work = mkdtempSync(join(tmpdir(), 'sg-serve-flags-'));
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

interface Started {
  child: ChildProcess;
  /** The printed URL, or null when the process exited first. */
  url: string | null;
  stderr: () => string;
  exited: Promise<number | null>;
}

async function serve(name: string, args: string[], env: Record<string, string> = {}): Promise<Started> {
  const spawned = spawnServe(['--port', '0', '--data', join(work, name), ...args], env);
  children.add(spawned.child);
  return { ...spawned, url: await spawned.url };
}

describe('serve: operating settings', () => {
  it('serves /metrics unless turned off by flag or variable, and refuses a bad value', async () => {
    const [standard, noFlag, offVariable, bad] = await Promise.all([
      serve('standard', []),
      serve('no-flag', ['--no-metrics']),
      serve('off-variable', [], { SESSIONGRAPH_METRICS: 'off' }),
      serve('bad', ['--metrics', 'maybe']),
    ]);

    const metrics = await fetch(new URL('/metrics', standard.url!));
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('# TYPE sessiongraph_graphql_requests_total counter');
    for (const off of [noFlag, offVariable]) {
      expect((await fetch(new URL('/metrics', off.url!))).status).toBe(404);
      expect((await fetch(new URL('/ready', off.url!))).status).toBe(200);
    }
    for (const path of ['/health', '/ready', '/metrics', '/graphql?query=%7B__typename%7D']) {
      const response = await fetch(new URL(path, standard.url!), { headers: { 'x-request-id': 'probe-1' } });
      expect(response.headers.get('x-request-id')).toBe('probe-1');
    }

    expect(bad.url).toBeNull();
    expect(await bad.exited).toBe(EXIT_USAGE);
    expect(bad.stderr()).toContain('--metrics: must be on or off (got "maybe")');

    for (const running of [standard, noFlag, offVariable]) {
      running.child.kill('SIGTERM');
      expect(await running.exited).toBe(EXIT_OK);
    }
  });

  it('takes a session TTL up to 1,000 years and refuses a longer one by flag or variable', async () => {
    const refused = await serve('ttl-flag', ['--session-ttl-hours', `${MAX_TTL_HOURS}.5`]);
    expect(refused.url).toBeNull();
    expect(await refused.exited).toBe(EXIT_USAGE);
    expect(refused.stderr()).toContain(
      `--session-ttl-hours: must be at most ${MAX_TTL_HOURS} hours (1,000 years)`,
    );
    expect(() => parseServeArgs([], { SESSIONGRAPH_SESSION_TTL_HOURS: `1${'0'.repeat(308)}` })).toThrow(
      `SESSIONGRAPH_SESSION_TTL_HOURS: must be at most ${MAX_TTL_HOURS} hours`,
    );
    expect(parseServeArgs(['--session-ttl-hours', String(MAX_TTL_HOURS)]).sessionTtlHours).toBe(
      MAX_TTL_HOURS,
    );
  }, 60_000);

  it('takes the PostgreSQL lock wait in milliseconds, 5 s by default', () => {
    expect(parseServeArgs([]).lockTimeoutMs).toBe(5_000);
    expect(parseServeArgs(['--lock-timeout-ms', '250']).lockTimeoutMs).toBe(250);
    expect(parseServeArgs([], { SESSIONGRAPH_LOCK_TIMEOUT_MS: '1500' }).lockTimeoutMs).toBe(1_500);
    expect(() => parseServeArgs(['--lock-timeout-ms', '0'])).toThrow('--lock-timeout-ms: must be at least 1');
  });
});
