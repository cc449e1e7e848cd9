/**
 * Child process for the two-writers test: appends `<tag>-<i>` for i = 1..count to one session,
 * each guarded by expectedLastSeq (re-read and retried on ConflictError, so two writers race on
 * every append), and prints `<seq> <expected last seq or 0>` per acknowledged append.
 *
 * Usage: jsonl-append-worker.ts <dataDir> <session key> <tag> <count>
 */

import { openJsonlBackend } from '../../src/backends/jsonl/jsonl-backend.js';
import { ConflictError } from '../../src/errors.js';

const [dataDir, key, tag, count] = process.argv.slice(2) as [string, string, string, string];
const store = await openJsonlBackend({ dataDir });
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
await store.close();
