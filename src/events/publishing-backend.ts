/**
 * The backend the API serves: every call goes to the real backend, and every write that changed
 * something publishes its event(s) on the bus once the backend has committed it. Resolvers keep
 * calling the SessionBackend interface and never publish themselves, so no write path can forget.
 *
 * Events of one session may reach the bus out of commit order (PostgreSQL settles appends made on
 * different pooled connections in any order; another process's write reaches the bus later, through
 * the watcher). Each MessageAppended therefore carries the seq of the message before it, as the
 * backend read it where it committed, and the feed's per-session ordering point
 * (session-order.ts) puts events back in order, reading the store where one is missing.
 */

import type { AppendResult, SessionBackend, SessionInfo } from '../backends/backend.js';
import type { EventBus } from './event-bus.js';

export function createPublishingBackend(backend: SessionBackend, bus: EventBus): SessionBackend {
  const publishing: SessionBackend = {
    info: () => backend.info(),
    messages: (key, args) => backend.messages(key, args),
    message: (key, seq) => backend.message(key, seq),
    lastMessages: (keys) => backend.lastMessages(keys),
    characterCounts: (keys) => backend.characterCounts(keys),
    session: (key) => backend.session(key),
    sessions: (args) => backend.sessions(args),
    search: (args) => backend.search(args),
    close: () => backend.close(),

    async append(key, messages, options) {
      const result = await backend.append(key, messages, options);
      // a replayed idempotent append stored nothing: there is nothing to announce
      if (!result.replayed) publishAppended(bus, key, result);
      return result;
    },
    async removeLast(key, options) {
      const result = await backend.removeLast(key, options);
      if (result.removed) {
        bus.publish({
          type: 'MessageRemoved',
          sessionKey: key,
          seq: result.removed.seq,
          session: result.session,
        });
      }
      return result;
    },
    async compact(key) {
      const result = await backend.compact(key);
      bus.publish({
        type: 'SessionCompacted',
        sessionKey: key,
        dropped: result.dropped,
        session: result.session,
      });
      return result;
    },
    async deleteSession(key) {
      await backend.deleteSession(key);
      bus.publish({ type: 'SessionDeleted', sessionKey: key });
    },
    async renameSession(key, name) {
      const session = await backend.renameSession(key, name);
      bus.publish({ type: 'SessionRenamed', sessionKey: key, name: session.name, session });
      return session;
    },
    async cleanupStale(ttlHours) {
      const keys = await backend.cleanupStale(ttlHours);
      for (const key of keys) bus.publish({ type: 'SessionDeleted', sessionKey: key });
      return keys;
    },
  };
  if (backend.ping) publishing.ping = backend.ping.bind(backend);
  if (backend.restoreSession) {
    const restore = backend.restoreSession.bind(backend);
    publishing.restoreSession = async (key, record) => {
      const session = await restore(key, record);
      // an import sets the name and times: the live session list must see them
      bus.publish({ type: 'SessionRenamed', sessionKey: key, name: session.name, session });
      return session;
    };
  }
  return publishing;
}

/**
 * One MessageAppended per stored message, each with the session as it stood after that message
 * (count and last seq; the batch's other fields), so a consumer can tell a session's first
 * message from a later one.
 */
function publishAppended(bus: EventBus, key: string, result: AppendResult): void {
  const last = result.messages.length - 1;
  let previousSeq = result.previousSeq ?? null;
  result.messages.forEach((message, i) => {
    const session: SessionInfo =
      i === last
        ? result.session
        : { ...result.session, messageCount: result.session.messageCount - (last - i), lastSeq: message.seq };
    bus.publish({ type: 'MessageAppended', sessionKey: key, message, session, previousSeq });
    // a batch is stored contiguously: nothing of another writer lands between its messages
    previousSeq = message.seq;
  });
}
