/** The operation sequence of jsonl-crash-worker.ts, shared with the test that checks its outcome. */

export type CrashOp = { kind: 'append'; contents: string[] } | { kind: 'remove' };

/** Operation number `op` (from 1) of the worker tagged `tag`: mostly single appends, some batches. */
export function crashWorkerOp(op: number, tag: string): CrashOp {
  if (op % 4 === 0) return { kind: 'remove' };
  if (op % 7 === 0) return { kind: 'append', contents: ['a', 'b', 'c'].map((s) => `${tag}-${op}${s}`) };
  return { kind: 'append', contents: [`${tag}-${op}`] };
}
