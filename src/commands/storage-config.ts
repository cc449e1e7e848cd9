/**
 * What `export` and `import` share: the storage options validated into a StorageConfig (a bad
 * value exits with EXIT_USAGE, naming the flag or variable), and the store they open.
 */

import type { Command } from 'commander';
import type { SessionBackend } from '../backends/backend.js';
import { openBackend } from '../backends/open-backend.js';
import { ConfigError, parseStorageConfig, type StorageConfig } from '../config.js';
import type { Logger } from '../logger.js';
import { EXIT_USAGE } from './exit-codes.js';

export function storageConfigOf(values: Record<string, unknown>, command: Command): StorageConfig {
  try {
    return parseStorageConfig(values, (attribute) => command.getOptionValueSource(attribute));
  } catch (err) {
    if (err instanceof ConfigError) command.error(err.message, { exitCode: EXIT_USAGE });
    throw err;
  }
}

/** The configured backend; the caller closes it. */
export function openStore(config: StorageConfig, logger: Logger): Promise<SessionBackend> {
  return openBackend({
    kind: config.backend,
    dataDir: config.dataDir,
    databaseUrl: config.databaseUrl ?? undefined,
    databaseSchema: config.databaseSchema,
    poolSize: config.poolSize,
    lockTimeoutMs: config.lockTimeoutMs,
    limits: { maxContentBytes: config.maxContentBytes },
    logger,
  });
}
