/**
 * Runs one JSONL -> SQLite migration in its own process so a test can SIGKILL it.
 *
 * argv: <dataDir> [killAtStep] [maxStepDelayMs]
 * - killAtStep: SIGKILL itself right after the N-th step (1-based, counted over all files); 0 = never.
 * - maxStepDelayMs: sleep a random time up to this after every step, so that kills from outside
 *   land between steps as well as inside them.
 * Prints `ready` before it starts and one JSON line with the outcome statuses when it finishes.
 */

import { migrateJsonlToSqlite } from '../../src/backends/migrate.js';

const [dataDir, killAtArg = '0', delayArg = '0'] = process.argv.slice(2);
if (!dataDir) throw new Error('usage: migrate-child.ts <dataDir> [killAtStep] [maxStepDelayMs]');
const killAt = Number(killAtArg);
const maxDelayMs = Number(delayArg);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
let steps = 0;

process.stdout.write('ready\n');
const summary = await migrateJsonlToSqlite({
  dataDir,
  onStep: () => {
    steps++;
    if (steps === killAt) process.kill(process.pid, 'SIGKILL');
    if (maxDelayMs > 0) Atomics.wait(sleeper, 0, 0, Math.random() * maxDelayMs);
  },
});
process.stdout.write(
  `${JSON.stringify({
    steps,
    outcomes: summary.outcomes.map((o) => ({ file: o.file, status: o.status })),
  })}\n`,
);
