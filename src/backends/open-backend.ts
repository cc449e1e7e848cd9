import type { Logger } from 'pino';
import { InvalidInputError } from '../errors.js';
import type { SessionBackend, StoreLimits } from './backend.js';
import { openJsonlBackend } from './jsonl/jsonl-backend.js';
import { openPostgresBackend } from './postgres/postgres-backend.js';
import { openSqliteBackend } from './sqlite/sqlite-backend.js';

export type BackendKind = 'sqlite' | 'jsonl' | 'postgres';

export interface BackendConfig {
  /** @default 'sqlite' */
  kind: BackendKind;
  /** The workspace: the folder that holds (or will hold) `sessions/`. Unused by postgres. */
  dataDir: string;
  /** postgres only: `postgres://user@host:5432/db`. */
  databaseUrl?: string | undefined;
  /** postgres only: the PostgreSQL schema holding the tables. @default 'sessiongraph' */
  databaseSchema?: string | undefined;
  /** postgres only. @default 10 // connections */
  poolSize?: number | undefined;
  /** postgres only: see PostgresBackendOptions.lockTimeoutMs. @default 5_000 // milliseconds */
  lockTimeoutMs?: number | undefined;
  limits?: Partial<StoreLimits> | undefined;
  logger?: Logger | undefined;
  /** SQLite only: see BackendOptions.onGroupCommit. */
  onGroupCommit?: ((requests: number, rows: number) => void) | undefined;
}

/** Opens the configured backend; the caller owns it and must `close()` it. */
export async function openBackend(config: BackendConfig): Promise<SessionBackend> {
  const options = {
    dataDir: config.dataDir,
    limits: config.limits,
    logger: config.logger,
    onGroupCommit: config.onGroupCommit,
  };
  switch (config.kind) {
    case 'sqlite':
      return openSqliteBackend(options);
    case 'jsonl':
      return openJsonlBackend(options);
    case 'postgres':
      if (!config.databaseUrl) {
        throw new InvalidInputError('the postgres backend needs --database-url', 'databaseUrl');
      }
      return openPostgresBackend({
        databaseUrl: config.databaseUrl,
        schema: config.databaseSchema,
        poolSize: config.poolSize,
        lockTimeoutMs: config.lockTimeoutMs,
        limits: config.limits,
        logger: config.logger,
      });
  }
}
