/**
 * A real server for API tests: a real backend from openBackend in a fresh temp workspace, served
 * by startServer on 127.0.0.1 port 0, queried with global fetch. close() stops the server, closes
 * the backend and removes the workspace.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionBackend, StoreLimits } from '../../src/backends/backend.js';
import { type BackendKind, openBackend } from '../../src/backends/open-backend.js';
import type { Config } from '../../src/config.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { type RunningServer, type ServerDeps, startServer } from '../../src/server.js';
import { dropSchemas, TEST_DATABASE_URL, uniqueSchema } from './postgres-database.js';

/**
 * A decoded JSON value. Responses are checked by assertions, not by types, so tests index into
 * them freely.
 */
// biome-ignore lint/suspicious/noExplicitAny: see above
export type Json = any;

export interface GraphQLResponse<T = Record<string, Json>> {
  data?: T | null;
  errors?: Array<{ message: string; path?: Array<string | number>; extensions?: Record<string, Json> }>;
}

export interface TestServer {
  kind: BackendKind;
  url: string;
  dataDir: string;
  /** The backend the server serves (possibly wrapped by `wrap`). */
  backend: SessionBackend;
  server: RunningServer;
  /** POSTs one operation; fails the test on a non-200 status. */
  gql<T = Record<string, Json>>(
    query: string,
    variables?: Record<string, unknown>,
  ): Promise<GraphQLResponse<T>>;
  close(): Promise<void>;
}

export interface TestServerOptions {
  /** Wraps the real backend before it is served (counting, failure injection). */
  wrap?: (backend: SessionBackend) => SessionBackend;
  limits?: Partial<StoreLimits>;
  /** Serve this workspace instead of a fresh one; it is not removed on close. */
  dataDir?: string;
  logger?: Logger;
  /** Live feed and WebSocket settings for startServer. */
  live?: Pick<ServerDeps, 'feed' | 'graphqlWs'>;
  /** Listen on this port (a restarted server keeps its clients' URL). @default 0 */
  port?: number;
  /** Any other server settings (request limits, production mode). @default testConfig's */
  config?: Partial<Config>;
  /**
   * postgres only: serve this schema of the test database, kept on close. @default a unique
   * schema, dropped on close
   */
  databaseSchema?: string;
}

export function testConfig(kind: BackendKind, dataDir: string, overrides: Partial<Config> = {}): Config {
  return {
    backend: kind,
    dataDir,
    port: 0,
    host: '127.0.0.1',
    maxContentBytes: 1_048_576,
    sessionTtlHours: null,
    databaseUrl: null,
    databaseSchema: 'sessiongraph',
    poolSize: 10,
    lockTimeoutMs: 5_000,
    redisUrl: null,
    redisPrefix: 'sessiongraph',
    wsMaxPayloadBytes: 4_194_304,
    maxSubscriptionsPerConnection: 100,
    wsMessageRate: 100,
    wsMessageBurst: 300,
    maxBodyBytes: 4_194_304,
    maxQueryDepth: 12,
    maxQueryCost: 200_000,
    maxAliases: 30,
    maxQueryTokens: 2_000,
    maxDirectives: 50,
    maxPageSize: 1_000,
    maxBatchMessages: 1_000,
    maxSearchQueryBytes: 1_024,
    production: false,
    logLevel: 'silent',
    metrics: true,
    metricsToken: null,
    metricsMaxOperationNames: 100,
    ui: true,
    tokens: [],
    tokensFile: null,
    corsOrigins: [],
    insecure: false,
    maxConnectionsPerToken: 1_000,
    ...overrides,
  };
}

export async function startTestServer(
  kind: BackendKind,
  options: TestServerOptions = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), `sg-api-${kind}-`));
  const ownSchema = kind === 'postgres' && !options.databaseSchema ? uniqueSchema('sg_api') : null;
  const databaseSchema = options.databaseSchema ?? ownSchema ?? undefined;
  const real = await openBackend({
    kind,
    dataDir,
    ...(options.limits && { limits: options.limits }),
    ...(kind === 'postgres' && { databaseUrl: TEST_DATABASE_URL, databaseSchema }),
  });
  const backend = options.wrap ? options.wrap(real) : real;
  const config = testConfig(kind, dataDir, {
    ...(options.limits?.maxContentBytes && { maxContentBytes: options.limits.maxContentBytes }),
    ...options.config,
  });
  let server: RunningServer;
  try {
    server = await startServer(options.port ? { ...config, port: options.port } : config, {
      backend,
      logger: options.logger ?? createLogger({ level: 'silent' }),
      ...options.live,
    });
  } catch (err) {
    await real.close();
    throw err;
  }
  return {
    kind,
    url: server.url,
    dataDir,
    backend,
    server,
    gql: (query, variables) => postGraphQL(server.url, query, variables),
    async close() {
      await server.close();
      await real.close();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
      if (ownSchema) await dropSchemas([ownSchema]);
    },
  };
}

export async function postGraphQL<T = Record<string, Json>>(
  url: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GraphQLResponse<T>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as GraphQLResponse<T>;
  if (response.status !== 200) {
    throw new Error(`HTTP ${response.status}: ${JSON.stringify(body)}`);
  }
  return body;
}
