/**
 * Publishes what OTHER processes write to the store (a zeroclaw agent sharing the workspace, or
 * another sessiongraph instance on the same PostgreSQL schema) as the same SessionEvents our own
 * mutations publish (DESIGN section 5), so that a dashboard can live-tail an agent. The backend
 * finds the changes (`SessionBackend.watchExternalChanges`: SQLite polls `PRAGMA data_version`,
 * JSONL watches the sessions folder, PostgreSQL listens to the other instances' notifications);
 * this turns each into events, reading what it needs through the backend:
 * - appended: one MessageAppended per new message, read page by page after the change's seq
 *   (O(new)), each with the session as it stood after that message, as our own appends do (its
 *   count and last seq from the change when the backend knows them, since later writes may
 *   already have moved the session read now);
 * - removed: one MessageRemoved per seq, highest first, each with the session after it;
 * - rewritten: SessionReset with the session now, so clients refetch;
 * - compacted: SessionCompacted; renamed: SessionRenamed; deleted: SessionDeleted.
 *
 * Changes are handled one at a time, in the order the backend found them, so a session's events
 * keep their order. The backend passed in must be the real one, not the publishing wrapper: it
 * never reports our own writes, whose events the mutations publish.
 */

import type { Logger } from 'pino';
import {
  DEFAULT_PAGE_SIZE,
  type ExternalChange,
  type ExternalWatchOptions,
  type SessionBackend,
  type SessionInfo,
  type StoredMessage,
} from '../backends/backend.js';
import type { EventBus } from './event-bus.js';

export interface RunningWatch {
  /** Stops watching, then waits until the changes already found are published. */
  close(): Promise<void>;
}

/**
 * Starts publishing other processes' writes on `bus`. A backend without `watchExternalChanges`
 * gets a watch that does nothing.
 */
export function startWatch(
  backend: SessionBackend,
  bus: EventBus,
  logger?: Logger,
  options: ExternalWatchOptions = {},
): RunningWatch {
  if (!backend.watchExternalChanges) {
    logger?.info(
      { backend: backend.info().kind },
      'writes by other processes are not watched on this backend',
    );
    return { close: async () => {} };
  }
  const queue: ExternalChange[] = [];
  let draining: Promise<void> | null = null;
  let closed = false;

  async function drain(): Promise<void> {
    for (let change = queue.shift(); change; change = queue.shift()) {
      try {
        await publishChange(backend, bus, change);
      } catch (error) {
        logger?.warn({ err: error, change }, 'could not publish a write made by another process');
      }
    }
    draining = null;
  }

  const watch = backend.watchExternalChanges((change) => {
    if (closed) return;
    queue.push(change);
    draining ??= drain();
  }, options);

  return {
    async close() {
      closed = true;
      watch.close();
      await draining;
    },
  };
}

async function publishChange(backend: SessionBackend, bus: EventBus, change: ExternalChange): Promise<void> {
  const sessionKey = change.sessionKey;
  switch (change.kind) {
    case 'appended': {
      const messages = await readAppended(backend, change.sessionKey, change.afterSeq, change.throughSeq);
      if (messages.length === 0) return;
      const session = await backend.session(sessionKey);
      if (!session) return; // deleted meanwhile: its SessionDeleted follows
      const last = messages.length - 1;
      const count = change.after?.messageCount ?? session.messageCount;
      messages.forEach((message, i) => {
        const after: SessionInfo = {
          ...session,
          messageCount: Math.max(1, count - (last - i)),
          lastSeq: message.seq,
        };
        // read after the fact, so not known to follow anything exactly: the feed checks the store
        bus.publish({ type: 'MessageAppended', sessionKey, message, session: after, previousSeq: null });
      });
      return;
    }
    case 'removed': {
      const session = await backend.session(sessionKey);
      if (!session) return;
      const { seqs } = change;
      const end = change.after ? { ...session, ...change.after } : session;
      seqs.forEach((seq, i) => {
        const next = seqs[i + 1];
        const after: SessionInfo =
          next === undefined
            ? end
            : { ...end, messageCount: end.messageCount + (seqs.length - 1 - i), lastSeq: next };
        bus.publish({ type: 'MessageRemoved', sessionKey, seq, session: after });
      });
      return;
    }
    case 'rewritten':
      bus.publish({ type: 'SessionReset', sessionKey, session: await backend.session(sessionKey) });
      return;
    case 'compacted': {
      const session = await backend.session(sessionKey);
      if (session) bus.publish({ type: 'SessionCompacted', sessionKey, dropped: 0, session });
      return;
    }
    case 'renamed': {
      const session = await backend.session(sessionKey);
      if (session) bus.publish({ type: 'SessionRenamed', sessionKey, name: change.name, session });
      return;
    }
    case 'deleted':
      bus.publish({ type: 'SessionDeleted', sessionKey });
      return;
  }
}

/** The messages with afterSeq < seq <= throughSeq, in order. */
async function readAppended(
  backend: SessionBackend,
  key: string,
  afterSeq: number,
  throughSeq: number,
): Promise<StoredMessage[]> {
  const out: StoredMessage[] = [];
  let after = afterSeq;
  for (;;) {
    const page = await backend.messages(key, {
      afterSeq: after,
      beforeSeq: throughSeq + 1,
      first: DEFAULT_PAGE_SIZE,
    });
    out.push(...page.items);
    const last = page.items.at(-1);
    if (!page.hasNextPage || !last) return out;
    after = last.seq;
  }
}
