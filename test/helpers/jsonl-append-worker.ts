/**
 * Child process for the two-writers tests.
 *
 * Guarded mode (default): appends `<tag>-<i>` for i = 1..count to one session, each guarded by
 * expectedLastSeq (re-read and retried on ConflictError, so two writers race on every append), and
 * prints `<seq> <expected last seq or 0>` per acknowledged append.
 *
 * Idempotent mode (`idempotent <seed>`): appends `m-<i>` with clientMessageId `id-<i>` for
 * i = 1..count, so that two such processes send every id at once; before each append it waits a
 * seeded 0-2 ms so that the two interleave differently each run, while 3 readers loop over the
 * session as a served process's clients would. Prints `<i> <seq> <replayed 0|1>`.
 *
 * Usage: jsonl-append-worker.ts <dataDir> <session key> <tag> <count> [idempotent <seed>]
 */

import { openJsonlBackend } from '../../src/backends/jsonl/jsonl-backend.js';
import { ConflictError } from '../../src/errors.js';
import { prng } from './prng.js';

const [dataDir, key, tag, count, mode, seed] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string | undefined,
  string | undefined,
];
const store = await openJsonlBackend({ dataDir });
if (mode === 'idempotent') {
  const random = prng(Number(seed));
  // Like a served process: clients read the session while the appends run.
  let writing = true;
  const readers = Array.from({ length: 3 }, async () => {
    while (writing) {
      await store.session(key);
      await store.messages(key, { last: 3 });
    }
  });
  for (let i = 1; i <= Number(count); i++) {
    const pause = Math.floor(random() * 3);
    if (pause > 0) await new Promise((r) => setTimeout(r, pause));
    const { messages, replayed } = await store.append(key, [{ role: 'user', content: `m-${i}` }], {
      clientMessageId: `id-${i}`,
    });
    process.stdout.write(`${i} ${messages[0]!.seq} ${replayed ? 1 : 0}\n`);
  }
  writing = false;
  await Promise.all(readers);
} else {
  for (let i = 1; i <= Number(count); i++) {
    for (;;) {
      const expected = (await store.session(key))?.lastSeq ?? null;
      try {
        const { messages } = await store.append(key, [{ role: 'user', content: `${tag}-${i}` }], {
          expectedLastSeq: expected,
        });
        process.stdout.write(`${messages[0]!.seq} ${expected ?? 0}\n`);
        break;
      } catch (error) {
        if (!(error instanceof ConflictError)) throw error;
      }
    }
  }
}
await store.close();
