/**
 * Child process for the JSONL crash tests.
 *
 * Loop mode: runs `crashWorkerOp(1, 2, ...)` against one session in an endless loop, printing an
 * acknowledgement line after each operation resolved: `A <op> <first seq> <count>` or
 * `R <op> <removed seq or 0>`, and `B <op>` before a removeLast begins. The parent kills it with
 * SIGKILL.
 *
 * Injected mode (`inject <step>`): sends `idempotentCrashRequest()` once and kills itself with
 * SIGKILL right after the append reaches `step` (jsonl-crash-ops.ts); with `zeroclaw`, a zeroclaw
 * line is appended to the file (no lock, as zeroclaw does) right after the intent is recorded, so
 * ours land after it. Prints `O` once the store is open, and `A <first seq> <count>` (exit 0) if the
 * step is never reached.
 *
 * Usage: jsonl-crash-worker.ts <dataDir> <session key> <content tag>
 *        jsonl-crash-worker.ts <dataDir> <session key> inject <step> [zeroclaw]
 */

import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { openJsonlBackend } from '../../src/backends/jsonl/jsonl-backend.js';
import { sanitizeKey } from '../../src/backends/keys.js';
import { crashWorkerOp, idempotentCrashRequest, ZEROCLAW_INTERLOPER } from './jsonl-crash-ops.js';

const [dataDir, key, tag, step, zeroclaw] = process.argv.slice(2) as [
  string,
  string,
  string,
  string | undefined,
  string | undefined,
];

if (tag === 'inject') {
  const store = await openJsonlBackend({
    dataDir,
    onAppendStep: (reached) => {
      if (zeroclaw === 'zeroclaw' && reached === 'intent-written') {
        appendFileSync(join(dataDir, 'sessions', `${sanitizeKey(key)}.jsonl`), ZEROCLAW_INTERLOPER);
      }
      if (reached === step) process.kill(process.pid, 'SIGKILL');
    },
  });
  process.stdout.write('O\n');
  const { messages, clientMessageId } = idempotentCrashRequest();
  const result = await store.append(key, messages, { clientMessageId });
  process.stdout.write(`A ${result.messages[0]!.seq} ${result.messages.length}\n`);
  await store.close();
} else {
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
}
