import { type ChildProcess, spawn } from 'node:child_process';

const ROOT = new URL('../..', import.meta.url);

export interface SpawnedServe {
  child: ChildProcess;
  /** The URL it printed on stdout; null when it exited first. */
  url: Promise<string | null>;
  exited: Promise<number | null>;
  stderr(): string;
}

/**
 * Spawns the real `sessiongraph serve <args>` (src/cli.ts through tsx) with none of this process's
 * SESSIONGRAPH_* variables but `env`, logging at warn unless `env` says otherwise.
 */
export function spawnServe(args: readonly string[], env: Record<string, string> = {}): SpawnedServe {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('SESSIONGRAPH_')),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', ...args], {
    cwd: ROOT,
    env: { ...inherited, SESSIONGRAPH_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const url = new Promise<string | null>((resolve) => {
    child.stdout!.on('data', (d) => {
      stdout += d;
      const printed = /^(http:\/\/\S+)$/m.exec(stdout)?.[1];
      if (printed) resolve(printed);
    });
    void exited.then(() => resolve(null));
  });
  return { child, url, exited, stderr: () => stderr };
}

/** spawnServe, resolved once it serves; rejects, with what it logged, when it exits first. */
export async function startServe(
  args: readonly string[],
  env: Record<string, string> = {},
  tracked?: Set<ChildProcess>,
): Promise<{ child: ChildProcess; url: string; stderr(): string }> {
  const spawned = spawnServe(args, env);
  tracked?.add(spawned.child);
  const url = await spawned.url;
  if (url === null) {
    throw new Error(`serve exited ${await spawned.exited} before printing a URL: ${spawned.stderr()}`);
  }
  return { child: spawned.child, url, stderr: spawned.stderr };
}
