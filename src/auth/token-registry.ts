/**
 * The configured tokens, looked up by secret. Tokens come from `--token` / SESSIONGRAPH_TOKENS
 * (fixed for the process) and from a tokens file, which is read again on SIGHUP (the caller wires
 * the signal) and when the file changes: a token removed from it (or whose scopes or prefix
 * changed) stops being current, and so does a token past its `expires=`; the live subscriptions
 * such a token opened end at their next event.
 */

import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../config.js';
import { findToken } from './find-token.js';
import { isExpired, OPEN_PRINCIPAL, type Principal } from './principal.js';
import { parseTokenSpecs, splitTokenSpecs, type TokenEntry, TokenSpecError } from './token-spec.js';

export interface TokenRegistry {
  /** False when no token is configured: everyone is OPEN_PRINCIPAL. */
  readonly required: boolean;
  /** The principal whose secret this is, or null for a missing or unknown one. */
  authenticate(secret: string | null | undefined): Principal | null;
  /** Whether the principal's token is still configured as it was when it authenticated. */
  isCurrent(principal: Principal): boolean;
  /** Reads the tokens file again; a file that does not parse keeps the previous tokens (logged). */
  reload(): void;
  close(): void;
}

export interface TokenRegistryOptions {
  /** Parsed `--token` and SESSIONGRAPH_TOKENS specs. @default [] */
  tokens?: readonly TokenEntry[];
  /** A file of token specs (one per line, `#` comments). @default null // none */
  tokensFile?: string | null;
  logger: Logger;
}

export function createTokenRegistry(options: TokenRegistryOptions): TokenRegistry {
  const fixed = options.tokens ?? [];
  const file = options.tokensFile ?? null;
  const { logger } = options;
  // throws ConfigError at start: a server must not come up with tokens it cannot read
  let fromFile = file === null ? [] : readTokensFile(file);
  let entries = merge(fixed, fromFile);
  let current = new Set<Principal>(entries.map((e) => e.principal));

  const reload = () => {
    if (file === null) return;
    try {
      const next = readTokensFile(file);
      // an unchanged token keeps its principal object: its sessions stay current
      const previous = new Map(fromFile.map((e) => [identity(e), e]));
      fromFile = next.map((e) => previous.get(identity(e)) ?? e);
      entries = merge(fixed, fromFile);
      current = new Set(entries.map((e) => e.principal));
      logger.info({ tokens: entries.length }, 'tokens file read');
    } catch (err) {
      logger.error(
        { err: err instanceof Error ? err.message : err },
        'tokens file not reloaded; keeping the previous tokens',
      );
    }
  };

  let watcher: FSWatcher | undefined;
  let debounce: NodeJS.Timeout | undefined;
  if (file !== null) {
    try {
      // the folder, not the file: an editor or a deploy that replaces the file (write, then rename)
      // leaves a watch on the file's old inode; a watch on the folder sees the new one arrive
      const name = basename(file);
      watcher = watch(dirname(file), (_event, changed) => {
        if (changed !== null && changed !== name) return;
        clearTimeout(debounce);
        debounce = setTimeout(reload, 50);
      });
      watcher.on('error', (err) => logger.warn({ err }, 'tokens file watch failed; SIGHUP still reloads'));
    } catch (err) {
      logger.warn({ err }, 'cannot watch the tokens file; SIGHUP reloads it');
    }
  }

  return {
    required: fixed.length > 0 || file !== null,
    authenticate(secret) {
      if (fixed.length === 0 && file === null) return OPEN_PRINCIPAL;
      if (!secret) return null;
      const principal = findToken(entries, secret)?.principal ?? null;
      return principal && !isExpired(principal) ? principal : null;
    },
    isCurrent: (principal) =>
      principal === OPEN_PRINCIPAL || (current.has(principal) && !isExpired(principal)),
    reload,
    close() {
      clearTimeout(debounce);
      watcher?.close();
    },
  };
}

function readTokensFile(path: string): TokenEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `--tokens-file: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  try {
    return parseTokenSpecs(splitTokenSpecs(text));
  } catch (err) {
    if (err instanceof TokenSpecError) throw new ConfigError(`--tokens-file: ${err.message}`);
    throw err;
  }
}

function merge(fixed: readonly TokenEntry[], fromFile: readonly TokenEntry[]): TokenEntry[] {
  const names = new Set(fixed.map((e) => e.principal.name));
  const clash = fromFile.find((e) => names.has(e.principal.name));
  if (clash)
    throw new ConfigError(
      `--tokens-file: token name ${JSON.stringify(clash.principal.name)} is also given by --token`,
    );
  return [...fixed, ...fromFile];
}

/** Same name, secret, scopes and prefix: the same token. */
function identity(entry: TokenEntry): string {
  const { name, scopes, prefix } = entry.principal;
  const { expiresAt } = entry.principal;
  return JSON.stringify([name, entry.digest.toString('hex'), [...scopes].sort(), prefix, expiresAt]);
}
