/**
 * What the benches that load a real server share: the server as a child process running the real
 * CLI (`sessiongraph serve` on a free port), so its CPU is its own and measurable, and that CPU
 * read from Linux's /proc.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The project root: the child runs `src/cli.ts` from here. */
export const ROOT = new URL('../..', import.meta.url);

export interface ServerChild {
  child: ChildProcess;
  /** The GraphQL URL the server printed. */
  url: string;
}

/**
 * Starts `sessiongraph serve --port 0 <args>` and resolves once it prints its URL; rejects if it
 * exits first.
 * @param options.stderr where the server's log lines go. @default 'inherit'
 * @param options.logLevel @default 'warn'
 */
export function spawnServer(
  args: readonly string[],
  options: { stderr?: 'inherit' | 'ignore'; logLevel?: string } = {},
): Promise<ServerChild> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli.ts',
      'serve',
      '--port',
      '0',
      '--log-level',
      options.logLevel ?? 'warn',
      ...args,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', options.stderr ?? 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const url = /^(http:\/\/\S+)$/m.exec(out)?.[1];
      if (url) resolve({ child, url });
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
}

/** Stops each server with SIGTERM and waits for it to exit. */
export async function stopServers(servers: readonly ServerChild[]): Promise<void> {
  await Promise.all(
    servers.map(
      ({ child }) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    ),
  );
}

/**
 * CPU time (user + system) a process has used so far, in microseconds (clock ticks of 10 ms); 0 for
 * a process that is gone.
 */
export function cpuMicros(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return 0;
  }
}
