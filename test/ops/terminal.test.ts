/**
 * What a person at a terminal sees: the real CLI run under `script` (util-linux), which gives it a
 * pseudo-terminal for stdout and stderr. `migrate` draws its progress bar there, and `serve` logs
 * readable lines instead of JSON. The pipe cases (no bar, JSON lines) are in migrate-cli.test.ts,
 * cli.test.ts and logs.test.ts.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'sg-terminal-'));
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

/** `sessiongraph <args>` on a pseudo-terminal; `output` is everything it showed there. */
function onTerminal(args: string[]) {
  const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  // `exec`: script runs the command through $SHELL, and dash (Debian's sh, the shell when SHELL is
  // unset or /bin/sh) stays as the node process's parent in the terminal's foreground group, gets
  // the Ctrl-C as well and dies of it, so script reported 130 whatever the server did.
  const argv = [process.execPath, '--import', 'tsx', 'src/cli.ts', ...args];
  const command = `exec ${argv.map(quote).join(' ')}`;
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('SESSIONGRAPH_')),
  );
  const child = spawn('script', ['-q', '-e', '-f', '-c', command, '/dev/null'], {
    cwd: ROOT,
    env: { ...inherited, COLUMNS: '100' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  let output = '';
  child.stdout.on('data', (d) => {
    output += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  return { child, output: () => output, exited };
}

describe('on a terminal', () => {
  it('migrate draws a progress bar, then prints the summary', async () => {
    const dir = join(work, 'ws');
    mkdirSync(join(dir, 'sessions'), { recursive: true });
    for (let i = 0; i < 5; i++) {
      writeFileSync(
        join(dir, 'sessions', `s${i}.jsonl`),
        `${JSON.stringify({ role: 'user', content: `m${i}` })}\n`,
      );
    }
    const run = onTerminal(['migrate', '--data', dir, '--log-level', 'warn']);
    expect(await run.exited).toBe(0);
    const output = run.output();
    expect(output).toMatch(/\rmigrate \[#+\] 100% 5 messages, 5\/5 sessions/);
    expect(output).toContain('migrated 5 sessions, 5 messages (0 unreadable lines skipped)');
  });

  it('serve logs readable lines instead of JSON', async () => {
    const run = onTerminal(['serve', '--port', '0', '--data', join(work, 'serve')]);
    const deadline = Date.now() + 20_000;
    while (!/http:\/\/127\.0\.0\.1:\d+\/graphql/.test(run.output()) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Ctrl-C on the terminal: SIGINT to the server, which shuts down cleanly
    run.child.stdin.write('\u0003');
    expect(await run.exited).toBe(0);
    const output = run.output();
    expect(output).toMatch(/INFO.*listening/);
    expect(output).not.toContain('{"level"');
  });
});
