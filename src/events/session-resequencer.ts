/**
 * Puts each session's events back in commit order when they come from several instances.
 *
 * One instance publishes a session's events in commit order (publishing-backend.ts), but two
 * instances writing one session each publish after their own commit: instance B's event for seq 10
 * can reach Redis after instance A's for seq 11, committed later. The live feed takes a session's
 * events to be in commit order and drops an append at or below its head as already delivered, so
 * the client would silently miss seq 10. The same goes for a removal overtaken by the next append.
 *
 * Every MessageAppended and MessageRemoved carries the session's message count right after it, so
 * an event follows the last one passed on exactly when the count before it (after - 1 for an
 * append, after + 1 for a removal) is the count this resequencer holds. An event that comes too
 * early is held until its predecessors have passed; if they do not come within `holdMs` (lost on
 * the way, or a count that another writer's event misreported), the session's subscribers are
 * ended through `onGap` and resume from their cursor, which back-fills from storage. An event that
 * is already covered (a duplicate, an append at or below the last seq passed on) goes on at once:
 * the feed recognises it as stale. Renames and compactions change no count and pass at once;
 * a deletion or a reset ends the ordering state, since clients refetch after them anyway.
 */

import type { SessionEvent } from './event-bus.js';

export interface SessionResequencerOptions {
  /** Receives each event, per session in commit order. */
  release: (event: SessionEvent) => void;
  /** A held event's predecessors did not come in time: the session's subscribers must resume. */
  onGap: (sessionKey: string) => void;
  /** @default 1_000 // milliseconds an early event waits for its predecessors */
  holdMs?: number;
  /**
   * Sessions whose position is remembered, the least recently active forgotten first (a forgotten
   * session starts over from its next event).
   * @default 10_000 // sessions
   */
  maxSessions?: number;
}

export interface SessionResequencer {
  push(event: SessionEvent): void;
  /**
   * Starts the session over from its next event, dropping what it holds: its events were lost, so
   * the counts would make the next ones look early.
   */
  forget(sessionKey: string): void;
  /** forget() for every session; clears the timers. */
  clear(): void;
}

interface SessionState {
  /** Message count after the last event passed on. */
  count: number;
  /** Last readable seq after the last event passed on; null: empty. */
  lastSeq: number | null;
  held: SessionEvent[];
  timer: NodeJS.Timeout | undefined;
}

type Verdict = 'next' | 'covered' | 'early';

function judge(state: SessionState, event: SessionEvent): Verdict {
  if (event.type === 'MessageAppended') {
    if (state.lastSeq !== null && event.message.seq <= state.lastSeq) return 'covered';
    return event.session.messageCount - 1 === state.count ? 'next' : 'early';
  }
  if (event.type === 'MessageRemoved') {
    if (event.seq === state.lastSeq && event.session.messageCount + 1 === state.count) return 'next';
    // a removal of a message not passed on yet waits for its append; an older seq is covered
    return state.lastSeq === null || event.seq > state.lastSeq ? 'early' : 'covered';
  }
  return 'next';
}

const positionAfter = (event: SessionEvent) =>
  event.type === 'MessageAppended' || event.type === 'MessageRemoved'
    ? { count: event.session.messageCount, lastSeq: event.session.lastSeq }
    : null;

export function createSessionResequencer(options: SessionResequencerOptions): SessionResequencer {
  const holdMs = options.holdMs ?? 1_000;
  const maxSessions = options.maxSessions ?? 10_000;
  const sessions = new Map<string, SessionState>();

  const forget = (key: string) => {
    const state = sessions.get(key);
    if (state?.timer) clearTimeout(state.timer);
    sessions.delete(key);
  };

  const remember = (key: string, state: SessionState) => {
    // Map order is insertion order: re-inserting keeps the most recently active last.
    sessions.delete(key);
    sessions.set(key, state);
    if (sessions.size <= maxSessions) return;
    const [oldest, evicted] = sessions.entries().next().value as [string, SessionState];
    forget(oldest);
    if (evicted.held.length > 0) options.onGap(oldest);
  };

  /** Passes on what became next among the held events, and those they turned out to cover. */
  const releaseHeld = (state: SessionState) => {
    for (let progressed = true; progressed && state.held.length > 0; ) {
      progressed = false;
      for (let i = 0; i < state.held.length; i++) {
        const verdict = judge(state, state.held[i]!);
        if (verdict === 'early') continue;
        const [event] = state.held.splice(i, 1);
        if (verdict === 'next') Object.assign(state, positionAfter(event!));
        options.release(event!);
        progressed = true;
        break;
      }
    }
    if (state.held.length === 0 && state.timer) {
      clearTimeout(state.timer);
      state.timer = undefined;
    }
  };

  const hold = (key: string, state: SessionState, event: SessionEvent) => {
    state.held.push(event);
    state.timer ??= setTimeout(() => {
      if (sessions.get(key) !== state) return;
      forget(key);
      options.onGap(key);
    }, holdMs);
    state.timer.unref?.();
  };

  return {
    push(event) {
      const key = event.sessionKey;
      const state = sessions.get(key);
      const position = positionAfter(event);
      if (event.type === 'SessionDeleted' || event.type === 'SessionReset') {
        if (state) for (const early of state.held) options.release(early);
        forget(key);
        options.release(event);
        return;
      }
      if (!position) {
        options.release(event);
        return;
      }
      if (!state) {
        remember(key, { ...position, held: [], timer: undefined });
        options.release(event);
        return;
      }
      remember(key, state);
      const verdict = judge(state, event);
      if (verdict === 'early') {
        hold(key, state, event);
        return;
      }
      if (verdict === 'next') Object.assign(state, position);
      options.release(event);
      releaseHeld(state);
    },

    forget,

    clear() {
      for (const state of sessions.values()) if (state.timer) clearTimeout(state.timer);
      sessions.clear();
    },
  };
}
