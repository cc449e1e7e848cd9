/**
 * A child process for the SQLite multi-process and crash tests:
 * `node --import tsx sqlite-writer.ts <dataDir> <mode> <key> [count]`.
 *
 * Prints `ready` once the backend is open, then waits for a line on stdin before writing.
 * - `append`: appends `count` messages `<key>#<i>` in waves of 8 concurrent calls, to `<key>`
 *   and to the shared key `shared`; prints `done` and exits 0.
 * - `crash`: runs crashOps() on `<key>` forever, printing one line per acknowledged operation
 *   (`A <seq,...>` or `R <seq|->`), written synchronously (stdout is a pipe) after the promise
 *   resolved, so every printed line is a committed operation. The test kills it with SIGKILL.
 */

import { createInterface } from 'node:readline';
import { openSqliteBackend } from '../../src/backends/sqlite/sqlite-backend.js';

export type CrashOp = { kind: 'append'; contents: string[] } | { kind: 'remove' };

/** The deterministic operation sequence of `crash` mode; the test replays it to know the truth. */
export function crashOp(i: number): CrashOp {
  if (i % 7 === 6) return { kind: 'remove' };
  const n = i % 5 === 4 ? 3 : 1;
  return { kind: 'append', contents: Array.from({ length: n }, (_, j) => `op${i}.${j}`) };
}

async function main(): Promise<void> {
  const [dataDir, mode, key, count] = process.argv.slice(2) as [string, string, string, string?];
  const store = await openSqliteBackend({ dataDir });
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) =>
    createInterface({ input: process.stdin }).once('line', () => resolve()),
  );

  if (mode === 'append') {
    const total = Number(count);
    for (let i = 0; i < total; i += 8) {
      const wave = Array.from({ length: Math.min(8, total - i) }, (_, j) => i + j);
      // Each wave is issued in one tick, so the group commit takes it in one transaction.
      await Promise.all(
        wave.flatMap((n) => [
          store.append(key, [{ role: 'user', content: `${key}#${n}` }]),
          store.append('shared', [{ role: 'user', content: `${key}#${n}` }]),
        ]),
      );
    }
    await store.close();
    process.stdout.write('done\n');
    process.exit(0);
  }

  let last: number | null = null;
  for (let i = 0; ; i++) {
    const op = crashOp(i);
    if (op.kind === 'append') {
      const { messages } = await store.append(
        key,
        op.contents.map((content) => ({ role: 'user', content })),
      );
      last = messages.at(-1)!.seq;
      process.stdout.write(`A ${messages.map((m) => m.seq).join(',')}\n`);
    } else {
      const { removed, session } = await store.removeLast(
        key,
        last === null ? {} : { expectedLastSeq: last },
      );
      last = session.lastSeq;
      process.stdout.write(`R ${removed?.seq ?? '-'}\n`);
    }
  }
}

if (process.argv[1]?.endsWith('sqlite-writer.ts')) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
