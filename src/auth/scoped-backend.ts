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
 */

import type { Page, SearchArgs, SearchPage, SessionBackend, SessionPageArgs } from '../backends/backend.js';
import { ForbiddenError } from '../errors.js';
import {
  canAdmin,
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
  const visible = (key: string) => canSeeKey(principal, key);
  const writable = (key: string, what: string) => {
    if (!canWrite(principal))
      throw new ForbiddenError(`token ${principal.name} may not ${what}: it lacks the write scope`);
    if (!visible(key))
      throw new ForbiddenError(`token ${principal.name} may not ${what} outside its key prefix`);
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
      return backend.sessions({
        ...args,
        filter: { ...args.filter, ...(keyPrefix !== undefined && { keyPrefix }) },
      });
    },
    async search(args: SearchArgs) {
      const keyPrefix = effectivePrefix(principal, args.filter?.keyPrefix);
      const sessionKey = args.filter?.sessionKey;
      if (keyPrefix === null || (sessionKey !== undefined && !visible(sessionKey))) return NO_HITS;
      return backend.search({
        ...args,
        filter: { ...args.filter, ...(keyPrefix !== undefined && { keyPrefix }) },
      });
    },

    async append(key, messages, options) {
      writable(key, 'append messages');
      return backend.append(key, messages, options);
    },
    async removeLast(key, options) {
      writable(key, 'remove messages');
      return backend.removeLast(key, options);
    },
    async renameSession(key, name) {
      writable(key, 'rename sessions');
      return backend.renameSession(key, name);
    },
    async compact(key) {
      administrable('compact sessions');
      return backend.compact(key);
    },
    async deleteSession(key) {
      administrable('delete sessions');
      return backend.deleteSession(key);
    },
    async cleanupStale(ttlHours) {
      administrable('clean up sessions');
      return backend.cleanupStale(ttlHours);
    },
  };
}
