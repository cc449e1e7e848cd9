/**
 * `sessiongraph export` and `import` as a user runs them: real processes, a real pipe between
 * them, SQLite workspaces and the test PostgreSQL; an import killed mid-way and run again.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { SessionBackend } from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/open-backend.js';
import { createProgressBar } from '../../src/commands/progress-bar.js';
import { writeZeroclawSqlite } from '../helpers/api-zeroclaw-fixture.js';
import {
  dropSchemas,
  TEST_DATABASE_URL,
  uniqueSchema,
  withAdminClient,
} from '../helpers/postgres-database.js';

const ROOT = new URL('../..', import.meta.url);
const work = mkdtempSync(join(tmpdir(), 'sg-copy-cli-'));
const schemas = new Set<string>();
const running = new Set<ChildProcess>();
const stores: SessionBackend[] = [];

afterEach(async () => {
  for (const child of running)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  running.clear();
  for (const store of stores.splice(0)) await store.close();
});
afterAll(async () => {
  rmSync(work, { recursive: true, force: true });
  await dropSchemas(schemas);
});

interface Run {
  child: ChildProcess;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** `sessiongraph <args>` with no inherited SESSIONGRAPH_* variable; stdin from `input` if given. */
function run(args: string[], input?: NodeJS.ReadableStream | string): Run {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SESSIONGRAPH_')));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: ROOT,
    env: { ...env, SESSIONGRAPH_LOG_LEVEL: 'warn' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => {
    stdout += d;
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  if (typeof input === 'string') child.stdin!.end(input);
  else if (input) input.pipe(child.stdin!);
  else child.stdin!.end();
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once('close', (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done };
}

function postgresArgs(): string[] {
  const schema = uniqueSchema('sg_copy_cli');
  schemas.add(schema);
  return ['--backend', 'postgres', '--database-url', TEST_DATABASE_URL, '--database-schema', schema];
}

async function openPostgres(args: string[]): Promise<SessionBackend> {
  const store = await openBackend({
    kind: 'postgres',
    dataDir: '',
    databaseUrl: TEST_DATABASE_URL,
    databaseSchema: args[args.indexOf('--database-schema') + 1]!,
    poolSize: 2,
  });
  stores.push(store);
  return store;
}

describe('sessiongraph export | sessiongraph import', () => {
  it('moves a zeroclaw workspace into PostgreSQL through a pipe, and back', async () => {
    const source = join(work, 'zeroclaw');
    writeZeroclawSqlite(source, Date.UTC(2026, 2, 24, 21, 51, 41));
    const pg = postgresArgs();

    const exporter = run(['export', '--data', source]);
    const importer = run(['import', ...pg], exporter.child.stdout!);
    const [exported, imported] = await Promise.all([exporter.done, importer.done]);
    expect(exported.code).toBe(0);
    expect(exported.stderr).toContain('exported 2 sessions, 6 messages');
    expect(imported.code).toBe(0);
    expect(imported.stderr).toContain('imported 6 messages (0 were there already) in 2 sessions');

    const store = await openPostgres(pg);
    expect(await store.session('telegram_123456_alice')).toMatchObject({
      messageCount: 4,
      lastActivityAt: '2026-03-24T21:51:45.000456000+00:00',
    });

    const file = join(work, 'back.jsonl');
    const again = await run(['export', ...pg, file]).done;
    expect(again.code).toBe(0);
    const back = join(work, 'back');
    const restored = await run(['import', '--data', back, file]).done;
    expect(restored).toMatchObject({ code: 0 });
    const sqlite = await openBackend({ kind: 'sqlite', dataDir: back });
    stores.push(sqlite);
    expect((await sqlite.messages('gw_9f8e7d')).items.map((m) => m.createdAt)).toEqual([
      '2026-03-24T21:51:46.000456000+00:00',
      '2026-03-24T21:51:47.000456000+00:00',
    ]);
  });

  it('finishes an import killed mid-way when run again, storing nothing twice', async () => {
    const dataDir = join(work, 'big');
    const source = await openBackend({ kind: 'sqlite', dataDir });
    for (let s = 0; s < 4; s++) {
      for (let i = 0; i < 5_000; i += 1_000) {
        await source.append(
          `rpc_${s}`,
          Array.from({ length: 1_000 }, (_, j) => ({
            role: 'user',
            content: `session ${s} message ${i + j}`,
          })),
        );
      }
    }
    await source.close();
    const file = join(work, 'big.jsonl');
    expect((await run(['export', '--data', dataDir, file]).done).code).toBe(0);

    const pg = postgresArgs();
    const schema = pg.at(-1)!;
    const stored = () =>
      withAdminClient(async (c) => {
        const r = await c
          .query(`SELECT count(*)::int AS n FROM ${schema}.messages`)
          .catch(() => ({ rows: [{ n: 0 }] }));
        return r.rows[0]!.n as number;
      });
    const first = run(['import', '--batch-size', '50', ...pg, file]);
    while ((await stored()) < 2_000) {
      if (first.child.exitCode !== null) throw new Error('the import finished before it could be killed');
      await sleep(20);
    }
    first.child.kill('SIGKILL');
    await first.done;
    const before = await stored();
    expect(before).toBeLessThan(20_000);

    const second = await run(['import', ...pg, file]).done;
    expect(second.code).toBe(0);
    expect(second.stderr).toContain(`imported ${20_000 - before} messages (${before} were there already)`);
    const store = await openPostgres(pg);
    for (let s = 0; s < 4; s++) {
      const page = await store.messages(`rpc_${s}`, { last: 3 });
      expect(page.items.map((m) => m.content)).toEqual(
        [4_997, 4_998, 4_999].map((i) => `session ${s} message ${i}`),
      );
      expect((await store.session(`rpc_${s}`))!.messageCount).toBe(5_000);
    }
    const distinct = await withAdminClient(
      async (c) =>
        (await c.query(`SELECT count(DISTINCT content)::int AS n FROM ${schema}.messages`)).rows[0].n,
    );
    expect(distinct).toBe(20_000);
  }, 120_000);

  it('exits 1 on an export cut short, and 2 without a database URL', async () => {
    const dataDir = join(work, 'small');
    writeZeroclawSqlite(dataDir, Date.UTC(2026, 0, 1));
    const { stdout } = await run(['export', '--data', dataDir]).done;
    const cut = stdout.split('\n').slice(0, 4).join('\n');
    const target = join(work, 'cut-target');
    const truncated = await run(['import', '--data', target], cut).done;
    expect(truncated.code).toBe(1);
    expect(truncated.stderr).toContain('ended early');

    const noUrl = await run(['export', '--backend', 'postgres']).done;
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toContain('--database-url');
  });

  it('documents both commands in --help', async () => {
    for (const name of ['export', 'import']) {
      const help = await run([name, '--help']).done;
      expect(help.code).toBe(0);
      expect(help.stdout).toContain(`Usage: sessiongraph ${name}`);
      expect(help.stdout).toContain('--database-url');
    }
  });
});

describe('progress bar', () => {
  it('draws on a terminal, in place, and nothing elsewhere', () => {
    const written: string[] = [];
    const terminal = { isTTY: true, columns: 100, write: (s: string) => written.push(s) > 0 };
    const bar = createProgressBar(terminal as never, 'import', { intervalMs: 0 });
    bar.update({ sessions: 1, messages: 250, totalSessions: 4, totalMessages: 1_000 });
    bar.update({ sessions: 4, messages: 1_000, totalSessions: 4, totalMessages: 1_000 });
    bar.done();
    expect(written[0]).toMatch(/^\rimport \[#+-+\] {2}25% 250\/1,000 messages, 1\/4 sessions/);
    expect(written[0]!.endsWith('\u001b[K')).toBe(true);
    expect(written.at(-2)).toContain('100% 1,000/1,000 messages');
    expect(written.at(-1)).toBe('\n');

    const piped: string[] = [];
    const pipe = createProgressBar(
      { isTTY: false, columns: 0, write: (s: string) => piped.push(s) > 0 } as never,
      'x',
    );
    pipe.update({ sessions: 1, messages: 1, totalSessions: 1, totalMessages: 1 });
    pipe.done();
    expect(piped).toEqual([]);
  });
});
