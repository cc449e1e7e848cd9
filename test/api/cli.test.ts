import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawnServe, startServe } from '../helpers/cli-serve.js';
import { postGraphQL } from '../helpers/server.js';

const ROOT = new URL('../..', import.meta.url);
const work = mkdtempSync(join(tmpdir(), 'sg-cli-'));
const running = new Set<ChildProcess>();

interface Serve {
  child: ChildProcess;
  url: string;
  stderr: () => string;
}

/** Spawns `sessiongraph serve` with exactly these SESSIONGRAPH_* variables; resolves with the printed URL. */
function serve(args: string[], env: Record<string, string> = {}): Promise<Serve> {
  return startServe(args, env, running);
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

async function backendOf(url: string) {
  return (await postGraphQL(url, '{ backend { kind limits { maxContentBytes } } }')).data?.backend;
}

describe('sessiongraph serve', () => {
  afterEach(() => {
    for (const child of running) if (child.exitCode === null) child.kill('SIGKILL');
    running.clear();
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('uses defaults, prints its URL, serves, and exits 0 on SIGTERM', async () => {
    const dir = join(work, 'defaults');
    const s = await serve(['--port', '0', '--data', dir]);
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/graphql$/);
    expect(await backendOf(s.url)).toEqual({ kind: 'SQLITE', limits: { maxContentBytes: 1_048_576 } });
    expect(existsSync(join(dir, 'sessions', 'sessions.db'))).toBe(true);
    s.child.kill('SIGTERM');
    expect(await exitOf(s.child)).toBe(0);
  });

  it('takes settings from SESSIONGRAPH_* variables, and a flag over a variable', async () => {
    const envDir = join(work, 'from-env');
    const flagDir = join(work, 'from-flag');
    const fromEnv = await serve([], {
      SESSIONGRAPH_PORT: '0',
      SESSIONGRAPH_BACKEND: 'jsonl',
      SESSIONGRAPH_DATA: envDir,
      SESSIONGRAPH_MAX_CONTENT_BYTES: '2048',
    });
    expect(await backendOf(fromEnv.url)).toEqual({ kind: 'JSONL', limits: { maxContentBytes: 2_048 } });
    fromEnv.child.kill('SIGINT');
    expect(await exitOf(fromEnv.child)).toBe(0);

    const flagWins = await serve(
      ['--backend', 'sqlite', '--data', flagDir, '--port', '0', '--max-content-bytes', '4096'],
      {
        SESSIONGRAPH_PORT: 'not a port',
        SESSIONGRAPH_BACKEND: 'jsonl',
        SESSIONGRAPH_DATA: envDir,
        SESSIONGRAPH_MAX_CONTENT_BYTES: '2048',
      },
    );
    expect(await backendOf(flagWins.url)).toEqual({ kind: 'SQLITE', limits: { maxContentBytes: 4_096 } });
    expect(existsSync(join(flagDir, 'sessions', 'sessions.db'))).toBe(true);
    expect(existsSync(join(envDir, 'sessions', 'sessions.db'))).toBe(false);
    flagWins.child.kill('SIGTERM');
    expect(await exitOf(flagWins.child)).toBe(0);
  });

  it('refuses bad values with exit code 2, naming the flag or the variable', async () => {
    const run = (args: string[], env: Record<string, string> = {}) => {
      const inherited = Object.fromEntries(
        Object.entries(process.env).filter(([k]) => !k.startsWith('SESSIONGRAPH_')),
      );
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', ...args], {
        cwd: ROOT,
        env: { ...inherited, ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      running.add(child);
      let stderr = '';
      child.stderr!.on('data', (d) => {
        stderr += d;
      });
      return exitOf(child).then((code) => ({ code, stderr }));
    };
    const [badFlag, badEnv] = await Promise.all([
      run(['--port', '70000', '--backend', 'mongo']),
      run([], { SESSIONGRAPH_SESSION_TTL_HOURS: '-1' }),
    ]);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain('--port: must be at most 65535');
    expect(badFlag.stderr).toContain('--backend: must be sqlite, jsonl or postgres');
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toContain('SESSIONGRAPH_SESSION_TTL_HOURS');
  });

  it('stops cleanly on a signal sent the moment it logs that it listens', async () => {
    // The "listening" line carries the URL, so a person may press Ctrl-C on seeing it, while the
    // server is still finishing its start: that too is a clean shutdown with exit code 0.
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const s = spawnServe(['--port', '0', '--data', join(work, `early-${signal}`)], {
        SESSIONGRAPH_LOG_LEVEL: 'info',
      });
      running.add(s.child);
      let sent = false;
      s.child.stderr!.on('data', () => {
        if (!sent && s.stderr().includes('"msg":"listening"')) {
          sent = true;
          s.child.kill(signal);
        }
      });
      expect(await s.exited).toBe(0);
      expect(s.stderr()).toContain('"msg":"shutting down"');
      expect(s.stderr()).toContain('"msg":"closed"');
    }
  });

  it('exits 1 on a port in use, saying so in one line', async () => {
    const first = await serve(['--port', '0', '--data', join(work, 'port-first')]);
    const port = new URL(first.url).port;
    const second = spawnServe(['--port', port, '--data', join(work, 'port-second')]);
    running.add(second.child);
    expect(await second.exited).toBe(1);
    const lines = second
      .stderr()
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { level: number; msg: string; err?: { code?: string } });
    const errors = lines.filter((line) => line.level >= 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ msg: 'sessiongraph failed to start', err: { code: 'EADDRINUSE' } });
    // the first server is untouched
    expect(await backendOf(first.url)).toMatchObject({ kind: 'SQLITE' });
  });
});
