/**
 * The server under soak: the real CLI (`sessiongraph serve`, src/cli.ts run by tsx) in a child
 * process of its own, on a fixed data dir and port so that a restart serves the same store at the
 * same address. Its stderr is read as pino JSON lines, counted by level; lines at error (50) and
 * fatal (60) are kept to print. Its memory and CPU are read from /proc, the way an operator would.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

/** pino's numeric level of `error`; `fatal` is 60. */
export const ERROR_LEVEL = 50;

/** What every server process of the run logged, added up. */
export class ServerLogs {
  /** Lines by pino level (30 info, 40 warn, 50 error, 60 fatal). */
  readonly byLevel = new Map<number, number>();
  /** Every line at error level or above, as logged. */
  readonly errors: string[] = [];
  /** stderr lines that are not JSON (a crash trace, a Node warning). */
  readonly unparsed: string[] = [];

  read(line: string): void {
    let level: unknown;
    try {
      level = (JSON.parse(line) as { level?: unknown }).level;
    } catch {
      if (line.trim() !== '') this.unparsed.push(line);
      return;
    }
    if (typeof level !== 'number') {
      this.unparsed.push(line);
      return;
    }
    this.byLevel.set(level, (this.byLevel.get(level) ?? 0) + 1);
    if (level >= ERROR_LEVEL) this.errors.push(line);
  }

  count(level: number): number {
    return this.byLevel.get(level) ?? 0;
  }
}

/** How a stop went: the exit code (0 for a clean SIGTERM) and how long draining took. */
export interface StopReport {
  code: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
}

export interface ServerProcess {
  readonly pid: number;
  /** The GraphQL URL the server printed. */
  readonly url: string;
  /** Resident set size now, in KiB (VmRSS); null once the process is gone. */
  rssKiB(): number | null;
  /** CPU time used so far (user + system), in seconds; null once the process is gone. */
  cpuSeconds(): number | null;
  /**
   * A full garbage collection in the server, through its inspector (the Chrome DevTools Protocol's
   * `HeapProfiler.collectGarbage`, what an operator's DevTools button does): resolves with the V8
   * heap in use after it, in KiB. RSS read right after one is comparable from one moment to the
   * next; RSS read at any moment is wherever V8's collection cycle happens to be.
   */
  collectGarbage(): Promise<number>;
  /** SIGTERM, then the exit; SIGKILL after `timeoutMs` (reported as signal SIGKILL). */
  stop(timeoutMs?: number): Promise<StopReport>;
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

function readRssKiB(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function readCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the command name (which may hold spaces) start at field 3, state
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
  } catch {
    return null;
  }
}

/**
 * Sends CDP commands in order over one inspector session, closed at the end: a session left open
 * would make the process wait for the debugger at exit.
 */
async function inspect(url: string, methods: string[]): Promise<unknown[]> {
  const socket = new WebSocket(url, { perMessageDeflate: false });
  try {
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    const results: unknown[] = [];
    for (const [i, method] of methods.entries()) {
      results.push(
        await new Promise((resolve, reject) => {
          const onMessage = (data: Buffer) => {
            const reply = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: unknown };
            if (reply.id !== i + 1) return;
            socket.off('message', onMessage);
            if (reply.error) reject(new Error(`${method}: ${JSON.stringify(reply.error)}`));
            else resolve(reply.result);
          };
          socket.on('message', onMessage);
          socket.send(JSON.stringify({ id: i + 1, method }));
        }),
      );
    }
    return results;
  } finally {
    socket.close();
  }
}

/** The environment without SESSIONGRAPH_* variables: no tokens, the defaults, only our flags. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('SESSIONGRAPH_')),
  );
}

/** Starts `sessiongraph serve` and resolves once it printed its URL. */
export function startServerProcess(options: {
  dataDir: string;
  port: number;
  logs: ServerLogs;
  /** @default 30_000 // ms */
  startTimeoutMs?: number;
}): Promise<ServerProcess> {
  const child: ChildProcess = spawn(
    process.execPath,
    // the inspector on a free loopback port, only for collectGarbage(); nothing attaches otherwise
    [
      '--inspect=127.0.0.1:0',
      '--import',
      'tsx',
      CLI,
      'serve',
      '--data',
      options.dataDir,
      '--port',
      String(options.port),
    ],
    { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // a load process that dies must not leave its server behind
  const orphan = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', orphan);
  let inspectorUrl: string | undefined;
  createInterface({ input: child.stderr! }).on('line', (line) => {
    // Node's own inspector lines are not the server's log
    const inspector = /^Debugger listening on (ws:\/\/\S+)$/.exec(line);
    if (inspector) inspectorUrl = inspector[1];
    else if (!/^(Debugger (attached\.|ending on )|For help, see: https:\/\/nodejs\.org\/)/.test(line)) {
      options.logs.read(line);
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise<ServerProcess>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('the server did not print its URL in time'));
    }, options.startTimeoutMs ?? 30_000);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the server exited while starting (code ${code}, signal ${signal})`));
    });
    const stdout = createInterface({ input: child.stdout! });
    stdout.once('line', (url) => {
      clearTimeout(timer);
      const pid = child.pid!;
      resolve({
        pid,
        url: url.trim(),
        rssKiB: () => readRssKiB(pid),
        cpuSeconds: () => readCpuSeconds(pid),
        async collectGarbage() {
          if (!inspectorUrl) throw new Error('the server did not print its inspector URL');
          const [, usage] = await inspect(inspectorUrl, [
            'HeapProfiler.collectGarbage',
            'Runtime.getHeapUsage',
          ]);
          return Math.round((usage as { usedSize: number }).usedSize / 1_024);
        },
        async stop(timeoutMs = 30_000) {
          const started = performance.now();
          child.kill('SIGTERM');
          const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
          const { code, signal } = await exited;
          clearTimeout(killer);
          return { code, signal, ms: performance.now() - started };
        },
      });
    });
  });
}
