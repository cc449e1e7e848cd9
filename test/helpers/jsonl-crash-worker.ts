/**
 * Child process for the JSONL crash test: runs `crashWorkerOp(1, 2, ...)` against one session in an
 * endless loop, printing an acknowledgement line after each operation resolved:
 * `A <op> <first seq> <count>` or `R <op> <removed seq or 0>`, and `B <op>` before a removeLast
 * begins. The parent kills it with SIGKILL.
 *
 * Usage: jsonl-crash-worker.ts <dataDir> <session key> <content tag>
 */

import { openJsonlBackend } from '../../src/backends/jsonl/jsonl-backend.js';
import { crashWorkerOp } from './jsonl-crash-ops.js';

const [dataDir, key, tag] = process.argv.slice(2) as [string, string, string];
const store = await openJsonlBackend({ dataDir });
for (let op = 1; ; op++) {
  const next = crashWorkerOp(op, tag);
  if (next.kind === 'remove') {
    // Not an acknowledgement: tells the parent a rewrite is starting, a good moment to kill.
    process.stdout.write(`B ${op}\n`);
    const { removed } = await store.removeLast(key);
    process.stdout.write(`R ${op} ${removed?.seq ?? 0}\n`);
  } else {
    const { messages } = await store.append(
      key,
      next.contents.map((content) => ({ role: 'user', content })),
    );
    process.stdout.write(`A ${op} ${messages[0]!.seq} ${messages.length}\n`);
  }
}
