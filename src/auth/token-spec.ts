/**
 * The token spec syntax, one token per spec:
 *
 *     <name>:<secret>:<scopes>[:<key prefix>]
 *
 * - name: 1 to 64 of `A-Z a-z 0-9 _ . -`, unique; it names the caller in logs, never the secret;
 * - secret: 16 to 256 printable ASCII characters without `:` and whitespace, or `sha256=<64 hex>`,
 *   the SHA-256 of the secret, so a config file need not hold the secret itself;
 * - scopes: `read`, `write` or `admin`, comma-separated (`read,write`), optionally with
 *   `expires=<YYYY-MM-DD>` (the token ends at 00:00 UTC that day) or `expires=<unix seconds>`;
 * - key prefix: optional, the rest of the spec (it may hold `:`); the token only sees and writes
 *   sessions whose key starts with it. Not with `admin`, which covers every key.
 *
 * Secrets are kept only as SHA-256 digests. A slow password hash (scrypt, argon2) defends guessable
 * human passwords against an attacker holding the digests; API tokens of 16+ random characters
 * cannot be guessed from a digest, and a fast hash keeps every request's check cheap.
 */

import { createHash } from 'node:crypto';
import { type Principal, SCOPES, type Scope } from './principal.js';

/** One configured token: its principal and the digest of its secret. */
export interface TokenEntry {
  readonly principal: Principal;
  /** SHA-256 of the secret's UTF-8 bytes. */
  readonly digest: Buffer;
}

/** A spec that does not parse; the message says why, never the secret. */
export class TokenSpecError extends Error {
  override readonly name = 'TokenSpecError';
}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const SECRET = /^[\x21-\x39\x3b-\x7e]{16,256}$/;
const DIGEST = /^sha256=([0-9a-f]{64})$/i;

/** `2027-01-31` (00:00 UTC) or unix seconds, as ms since the epoch; null when neither. */
function parseExpiry(text: string): number | null {
  if (/^\d{1,12}$/.test(text)) return Number(text) * 1_000;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) return null;
  const time = Date.parse(`${text}T00:00:00Z`);
  return Number.isNaN(time) ? null : time;
}

export function digestOf(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function parseTokenSpec(spec: string): TokenEntry {
  const [name = '', secret = '', scopeList = '', ...rest] = spec.split(':');
  if (!NAME.test(name)) throw new TokenSpecError('the name must be 1 to 64 of A-Z a-z 0-9 _ . -');
  const label = `token ${JSON.stringify(name)}`;
  const digest = secretDigest(secret, label);
  const scopes = new Set<Scope>();
  let expiresAt: number | null = null;
  for (const scope of scopeList.split(',')) {
    if (scope.startsWith('expires=')) {
      expiresAt = parseExpiry(scope.slice('expires='.length));
      if (expiresAt === null) {
        throw new TokenSpecError(`${label}: expires= takes a date (YYYY-MM-DD) or unix seconds`);
      }
      continue;
    }
    if (!(SCOPES as readonly string[]).includes(scope)) {
      throw new TokenSpecError(`${label}: scopes must be a comma list of ${SCOPES.join(', ')}`);
    }
    scopes.add(scope as Scope);
  }
  const prefix = rest.length > 0 ? rest.join(':') : null;
  if (prefix === '') throw new TokenSpecError(`${label}: the key prefix, when given, must not be empty`);
  if (prefix !== null && scopes.has('admin')) {
    throw new TokenSpecError(`${label}: admin covers every key; drop the key prefix or the admin scope`);
  }
  if (prefix !== null && [...prefix].some((c) => c.charCodeAt(0) < 0x20 || c === '\u007f')) {
    throw new TokenSpecError(`${label}: the key prefix must not hold control characters`);
  }
  return {
    principal: Object.freeze({ name, scopes, prefix, expiresAt }),
    digest,
  };
}

/**
 * The SHA-256 digest a secret is kept as: of the secret itself, or the `sha256=<64 hex>` given.
 * @param label what the secret belongs to, for the error message (which never holds the secret)
 */
export function secretDigest(secret: string, label: string): Buffer {
  const hashed = DIGEST.exec(secret);
  if (hashed) return Buffer.from(hashed[1]!, 'hex');
  if (!SECRET.test(secret)) {
    throw new TokenSpecError(
      `${label}: the secret must be 16 to 256 printable ASCII characters without ':' or spaces, or sha256=<64 hex digits>`,
    );
  }
  return digestOf(secret);
}

/**
 * Several specs from one text (the SESSIONGRAPH_TOKENS variable, a tokens file): separated by
 * whitespace or newlines; a `#` at the start of a line or after whitespace starts a comment that runs
 * to the end of its line.
 */
export function splitTokenSpecs(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.replace(/(^|\s)#.*/, ''))
    .flatMap((line) => line.split(/\s+/))
    .filter((spec) => spec !== '');
}

/** Parses every spec and checks that names are unique. */
export function parseTokenSpecs(specs: readonly string[]): TokenEntry[] {
  const entries = specs.map(parseTokenSpec);
  const seen = new Set<string>();
  for (const { principal } of entries) {
    if (seen.has(principal.name))
      throw new TokenSpecError(`token name ${JSON.stringify(principal.name)} is used twice`);
    seen.add(principal.name);
  }
  return entries;
}
