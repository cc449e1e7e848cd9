/**
 * A real server on any of the three backends, opened from its config the way `sessiongraph serve`
 * opens it: SQLite and JSONL in a fresh temp workspace, PostgreSQL in a schema of its own (dropped
 * on close), for tests that must hold on every backend.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BackendKind } from '../../src/backends/open-backend.js';
import type { Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { dropSchemas, TEST_DATABASE_URL, uniqueSchema } from './postgres-database.js';
import { testConfig } from './server.js';

export const BACKEND_KINDS: readonly BackendKind[] = ['sqlite', 'jsonl', 'postgres'];

export interface KindServer {
  server: RunningServer;
  url: string;
  dataDir: string;
  close(): Promise<void>;
}

export async function serveKind(kind: BackendKind, overrides: Partial<Config> = {}): Promise<KindServer> {
  const dataDir = mkdtempSync(join(tmpdir(), `sg-${kind}-`));
  const schema = uniqueSchema('sg_test');
  const config = testConfig(kind, dataDir, {
    ...(kind === 'postgres' && { databaseUrl: TEST_DATABASE_URL, databaseSchema: schema, poolSize: 4 }),
    ...overrides,
  });
  const server = await startServer(config, { logger: createLogger({ level: 'silent' }) });
  return {
    server,
    url: server.url,
    dataDir,
    async close() {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
      if (kind === 'postgres') await dropSchemas([schema]);
    },
  };
}
