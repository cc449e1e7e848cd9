import { timingSafeEqual } from 'node:crypto';
import { digestOf, type TokenEntry } from './token-spec.js';

/**
 * The entry whose secret this is. The presented secret is hashed and compared with every entry's
 * digest in constant time, without stopping at a match, so the time taken says nothing about
 * which tokens exist or how much of a secret was right.
 */
export function findToken(entries: readonly TokenEntry[], secret: string): TokenEntry | undefined {
  const digest = digestOf(secret);
  let found: TokenEntry | undefined;
  for (const entry of entries) {
    if (timingSafeEqual(entry.digest, digest) && found === undefined) found = entry;
  }
  return found;
}
