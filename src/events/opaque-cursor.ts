/**
 * The envelope every cursor of the API shares: base64url of a short versioned text, so clients
 * treat cursors as opaque. Decoding never throws: a malformed cursor is null here and an
 * InvalidInputError naming the argument at the caller.
 */

import { InvalidInputError } from '../errors.js';

/** Longest cursor accepted, in characters: far above any we issue, so junk is refused early. */
const MAX_CURSOR_LENGTH = 8_192;

export function toOpaqueCursor(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

/** The decoded text, or null when the input is not canonical base64url of valid UTF-8. */
export function fromOpaqueCursor(cursor: string): string | null {
  if (cursor.length === 0 || cursor.length > MAX_CURSOR_LENGTH || !/^[A-Za-z0-9_-]+$/.test(cursor)) {
    return null;
  }
  const bytes = Buffer.from(cursor, 'base64url');
  // re-encoding must give the same text, or the input carried stray bits
  if (bytes.toString('base64url') !== cursor) return null;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

export function badCursor(field: string, kind: string): InvalidInputError {
  return new InvalidInputError(`${field} is not a valid ${kind} cursor`, field);
}
