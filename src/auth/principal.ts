/**
 * Who is calling, as every resolver and transport sees it: a token's name, its scopes and the
 * session-key prefix it is confined to. The scope rules live here, in one place:
 *
 * - `read`: queries and subscriptions;
 * - `write`: `read`, plus appendMessage(s), removeLastMessage and renameSession;
 * - `admin`: everything (compactSession, deleteSession, cleanupStaleSessions too), on every key.
 *
 * `write` includes `read` because a mutation's payload returns the session it wrote: a write-only
 * token would read through its own payloads anyway.
 */

import { sanitizeKey } from '../backends/keys.js';

export const SCOPES = ['read', 'write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  /** The token's name, for logs and metrics; never its secret. */
  readonly name: string;
  readonly scopes: ReadonlySet<Scope>;
  /** Session keys this principal may see and write start with this; null: every key. */
  readonly prefix: string | null;
  /** When the token stops being valid (ms since the epoch); null: never. @default null */
  readonly expiresAt?: number | null;
}

/** Whether the principal's token has expired by `now`. */
export function isExpired(principal: Principal, now = Date.now()): boolean {
  return principal.expiresAt != null && now >= principal.expiresAt;
}

/** The caller when no token is configured (loopback only): everything, everywhere. */
export const OPEN_PRINCIPAL: Principal = Object.freeze({
  name: 'anonymous',
  scopes: new Set<Scope>(SCOPES),
  prefix: null,
});

export function canWrite(principal: Principal): boolean {
  return principal.scopes.has('write') || principal.scopes.has('admin');
}

export function canAdmin(principal: Principal): boolean {
  return principal.scopes.has('admin');
}

/** Whether the principal may see (and, with the scope, write) the session with this key. */
export function canSeeKey(principal: Principal, key: string): boolean {
  return principal.prefix === null || key.startsWith(principal.prefix);
}

/**
 * Whether the principal may see the session with this key in a store whose file names are lossy
 * (JSONL, `src/backends/keys.ts`): the key and its file's stem both inside the prefix. zeroclaw
 * reads and writes a session under its file stem as key and checks no sidecar, so `alice.corp_2`
 * (stem `alice_corp_2`) may hold lines zeroclaw appended as `alice_corp_2`: a token confined to
 * `alice.corp_` must not see that file at all. Decided from the key alone.
 */
export function canSeeFileKey(principal: Principal, key: string): boolean {
  return canSeeKey(principal, key) && canSeeKey(principal, sanitizeKey(key));
}

/** A principal that may do everything: nothing to check or filter for it. */
export function isUnrestricted(principal: Principal): boolean {
  return principal.prefix === null && canAdmin(principal);
}

/**
 * The key prefix a listing runs under: the caller's requested prefix narrowed to the principal's.
 * `undefined`: no prefix (all keys); `null`: the two are disjoint, so the listing is empty.
 */
export function effectivePrefix(
  principal: Principal,
  requested: string | undefined,
): string | undefined | null {
  const own = principal.prefix;
  if (own === null) return requested;
  if (requested === undefined || own.startsWith(requested)) return own;
  if (requested.startsWith(own)) return requested;
  return null;
}
