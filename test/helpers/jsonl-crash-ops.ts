/** The operations of jsonl-crash-worker.ts, shared with the tests that check their outcome. */

export type CrashOp = { kind: 'append'; contents: string[] } | { kind: 'remove' };

/** Operation number `op` (from 1) of the worker tagged `tag`: mostly single appends, some batches. */
export function crashWorkerOp(op: number, tag: string): CrashOp {
  if (op % 4 === 0) return { kind: 'remove' };
  if (op % 7 === 0) return { kind: 'append', contents: ['a', 'b', 'c'].map((s) => `${tag}-${op}${s}`) };
  return { kind: 'append', contents: [`${tag}-${op}`] };
}

/** Every step of an append with a clientMessageId (JsonlAppendStep) a crash test kills the writer at. */
export const APPEND_STEPS = ['locked', 'intent-written', 'lines-written', 'recorded'] as const;

/** The request the injected-crash worker sends, and the test resends: a batch, with an id. */
export function idempotentCrashRequest(): {
  messages: Array<{ role: string; content: string }>;
  clientMessageId: string;
} {
  return {
    messages: ['crash-a', 'crash-b'].map((content) => ({ role: 'user', content })),
    clientMessageId: 'crash-id',
  };
}

/** The line the worker writes as zeroclaw between the intent record and our lines. */
export const ZEROCLAW_INTERLOPER = '{"role":"assistant","content":"zeroclaw wrote this meanwhile"}\n';
