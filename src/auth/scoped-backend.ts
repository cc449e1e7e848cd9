/**
 * The backend as one principal may use it: every resolver reads and writes through this view, so
 * no field (session, sessions, node(id:), search, Message.session, a payload's session ...) can
 * reach a session outside the principal's key prefix.
 *
 * - A session outside the prefix looks exactly like one that does not exist: null, an empty page.
 * - Listings (sessions, search) run with the prefix inside the backend query, so pages stay full
 *   and nothing outside the prefix is counted or paged over.
 * - A write the principal may not make (scope or prefix) raises ForbiddenError before it reaches the
 *   store; it says nothing about whether the session exists.
 * - On JSONL, whose file names are lossy, a key counts as inside the prefix only if its file stem is
 *   too (principal.ts, canSeeFileKey): zeroclaw writes a file under its stem, so the file of
 *   `alice.corp_2` is also zeroclaw's session `alice_corp_2`. Listings drop such keys after the
 *   query (a page may come back short; hasNextPage stays true while more follow).
 * - A KeyCollisionError whose owner key is outside the prefix reaches the caller without that key,
 *   in its fields and in its message: that some key shares the file name is all it learns.
 */

import type { Page, SearchArgs, SearchPage, SessionBackend, SessionPageArgs } from '../backends/backend.js';
import { ForbiddenError, KeyCollisionError } from '../errors.js';
import {
  canAdmin,
  canSeeFileKey,
  canSeeKey,
  canWrite,
  effectivePrefix,
  isUnrestricted,
  type Principal,
} from './principal.js';

const EMPTY_PAGE: Page<never> = Object.freeze({ items: [], hasNextPage: false, hasPreviousPage: false });
const NO_HITS: SearchPage = Object.freeze({ hits: [], hasNextPage: false });

export function scopeBackend(backend: SessionBackend, principal: Principal): SessionBackend {
  if (isUnrestricted(principal)) return backend;
  const lossyFileNames = backend.info().kind === 'jsonl';
  const visible = lossyFileNames
    ? (key: string) => canSeeFileKey(principal, key)
    : (key: string) => canSeeKey(principal, key);
  const writable = (key: string, what: string) => {
    if (!canWrite(principal))
      throw new ForbiddenError(`token ${principal.name} may not ${what}: it lacks the write scope`);
    if (!canSeeKey(principal, key))
      throw new ForbiddenError(`token ${principal.name} may not ${what} outside its key prefix`);
    if (!visible(key))
      throw new ForbiddenError(
        `token ${principal.name} may not ${what} for this key: its JSONL file name is outside the token's key prefix`,
      );
  };
  /** A write's KeyCollisionError, without the owner key when the principal may not see it. */
  const confined = async <T>(key: string, write: () => Promise<T>): Promise<T> => {
    try {
      return await write();
    } catch (error) {
      if (error instanceof KeyCollisionError && error.existingKey !== null && !visible(error.existingKey)) {
        throw new KeyCollisionError(
          'the session key maps to a JSONL file name that another session key already owns',
          key,
          null,
        );
      }
      throw error;
    }
  };
  const administrable = (what: string) => {
    if (!canAdmin(principal))
      throw new ForbiddenError(`token ${principal.name} may not ${what}: it lacks the admin scope`);
  };

  return {
    info: () => backend.info(),
    // the view does not own the backend: whoever opened it closes it
    close: async () => {},

    messages: async (key, args) => (visible(key) ? backend.messages(key, args) : EMPTY_PAGE),
    message: async (key, seq) => (visible(key) ? backend.message(key, seq) : null),
    lastMessages: (keys) => backend.lastMessages(keys.filter(visible)),
    characterCounts: (keys) => backend.characterCounts(keys.filter(visible)),
    session: async (key) => (visible(key) ? backend.session(key) : null),

    async sessions(args: SessionPageArgs = {}) {
      const keyPrefix = effectivePrefix(principal, args.filter?.keyPrefix);
      if (keyPrefix === null) return EMPTY_PAGE;
      const page = await backend.sessions({
        ...args,
        filter: { ...args.filter, ...(keyPrefix !== undefined && { keyPrefix }) },
      });
      if (!lossyFileNames || page.items.every((s) => visible(s.key))) return page;
      return { ...page, items: page.items.filter((s) => visible(s.key)) };
    },
    async search(args: SearchArgs) {
      const keyPrefix = effectivePrefix(principal, args.filter?.keyPrefix);
      const sessionKey = args.filter?.sessionKey;
      if (keyPrefix === null || (sessionKey !== undefined && !visible(sessionKey))) return NO_HITS;
      const page = await backend.search({
        ...args,
        filter: { ...args.filter, ...(keyPrefix !== undefined && { keyPrefix }) },
      });
      if (!lossyFileNames || page.hits.every((h) => visible(h.message.sessionKey))) return page;
      return { ...page, hits: page.hits.filter((h) => visible(h.message.sessionKey)) };
    },

    async append(key, messages, options) {
      writable(key, 'append messages');
      return confined(key, () => backend.append(key, messages, options));
    },
    async removeLast(key, options) {
      writable(key, 'remove messages');
      return confined(key, () => backend.removeLast(key, options));
    },
    async renameSession(key, name) {
      writable(key, 'rename sessions');
      return confined(key, () => backend.renameSession(key, name));
    },
    async compact(key) {
      administrable('compact sessions');
      return confined(key, () => backend.compact(key));
    },
    async deleteSession(key) {
      administrable('delete sessions');
      return confined(key, () => backend.deleteSession(key));
    },
    async cleanupStale(ttlHours) {
      administrable('clean up sessions');
      return backend.cleanupStale(ttlHours);
    },
  };
}
