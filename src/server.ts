/**
 * The composition root: one node:http server on one port, graphql-yoga at `/graphql` (GraphiQL in
 * a browser; subscriptions as server-sent events), graphql-ws on the same path, `/health`
 * (liveness), `/ready` (readiness: not draining, storage reachable and, with Redis, the bus live;
 * src/readiness.ts), `/metrics` (Prometheus, src/metrics/; `--no-metrics` turns it off) and `/ui/`
 * (the live dashboard, src/ui/; `--no-ui` turns it off). Every
 * request gets a request id, echoed in `x-request-id` and on each of its log lines, and then passes
 * the request gate (src/transport/request-gate.ts): one check of path, method, media type, Host,
 * Origin and token for every HTTP request and WebSocket upgrade, before yoga or ws sees it. Resolvers
 * get the backend wrapped so that every write publishes its events on the bus, which the live
 * feeds read: in-process by default, Redis (`--redis-url`) when several instances share a store.
 * Writes that other processes (a zeroclaw agent, or without Redis another instance on the same
 * PostgreSQL schema) make to the same store are published there too (events/watch.ts).
 */

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { useGraphQlJit } from '@envelop/graphql-jit';
import { getOperationAST } from 'graphql';
import { createYoga, useReadinessCheck, type YogaServerInstance } from 'graphql-yoga';
import { type AccessControl, createAccessControl } from './auth/access-control.js';
import { isLoopbackHost } from './auth/origin-policy.js';
import type { SessionBackend, StoreLimits } from './backends/backend.js';
import { resolveLimits } from './backends/backend-options.js';
import { openBackend } from './backends/open-backend.js';
import { type Config, ConfigError } from './config.js';
import type { EventBus } from './events/event-bus.js';
import { createFeed, type Feed, type FeedOptions } from './events/feed.js';
import { createLocalEventBus } from './events/local-event-bus.js';
import { createPublishingBackend } from './events/publishing-backend.js';
import { createRedisEventBus } from './events/redis-event-bus.js';
import { startWatch } from './events/watch.js';
import { limitPlugins, type RequestLimits } from './limits/limit-plugins.js';
import { createLogger, currentLogger, type Logger, toYogaLogger } from './logger.js';
import { createCountingBus } from './metrics/counting-bus.js';
import { createInstrumentedBackend } from './metrics/instrumented-backend.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { useMetrics } from './metrics/use-metrics.js';
import { createReadinessCheck } from './readiness.js';
import type { Context } from './schema/context.js';
import { schema } from './schema/index.js';
import { useAppErrors } from './schema/use-app-errors.js';
import { useSharedSubscriptionExecution } from './schema/use-shared-subscription-execution.js';
import {
  attachGraphQLWs,
  type GraphQLWsOptions,
  type WsServerContext,
} from './transport/attach-graphql-ws.js';
import { createRequestGate, writeRefusal } from './transport/request-gate.js';
import { createRequestScope } from './transport/request-scope.js';
import { useDashboard } from './ui/use-dashboard.js';

export interface ServerDeps {
  /**
   * An open backend to serve. The caller keeps owning it: close() does not close it.
   * @default openBackend(config) // opened here, closed by close()
   */
  backend?: SessionBackend;
  /** @default createLogger({ level: config.logLevel }) */
  logger?: Logger;
  /**
   * How long close() lets in-flight requests finish before it drops the remaining connections.
   * @default 10_000 // milliseconds
   */
  drainTimeoutMs?: number;
  /**
   * The bus the live feeds read and every write publishes to. The caller keeps owning it.
   * @default config.redisUrl ? createRedisEventBus(...) : createLocalEventBus() // closed by close()
   */
  bus?: EventBus;
  /** Live feed limits. @default DEFAULT_FEED_OPTIONS (src/events/feed.ts) */
  feed?: Partial<FeedOptions>;
  /**
   * WebSocket settings. @default DEFAULT_GRAPHQL_WS_OPTIONS (src/transport/attach-graphql-ws.ts), with
   * config.wsMaxPayloadBytes
   */
  graphqlWs?: Partial<GraphQLWsOptions>;
}

export interface RunningServer {
  /** The GraphQL endpoint, e.g. `http://127.0.0.1:4000/graphql`. */
  readonly url: string;
  readonly port: number;
  readonly httpServer: Server;
  readonly yoga: SessionGraphYoga;
  /** The backend as resolvers see it: writes through it publish their events. */
  readonly backend: SessionBackend;
  readonly bus: EventBus;
  /** Reads the tokens file again (the CLI calls it on SIGHUP); without one, does nothing. */
  reloadTokens(): void;
  /**
   * Drains and stops: readiness turns false, the port stops accepting, WebSockets are closed with
   * GoingAway, live feeds end with UNAVAILABLE (clients resume elsewhere or later), in-flight
   * requests finish, yoga is disposed, the TTL timer cleared, and the bus and backend closed if
   * this server opened them. Idempotent.
   */
  close(): Promise<void>;
}

/** Where the API is served, over HTTP, SSE and WebSocket alike. */
const GRAPHQL_ENDPOINT = '/graphql';
/** @default 3_600_000 // the TTL cleanup runs hourly */
const TTL_INTERVAL_MS = 3_600_000;

export async function startServer(config: Config, deps: ServerDeps = {}): Promise<RunningServer> {
  const logger = deps.logger ?? createLogger({ level: config.logLevel });
  const limits: StoreLimits = resolveLimits({
    maxContentBytes: config.maxContentBytes,
    maxPageSize: config.maxPageSize,
    maxBatchMessages: config.maxBatchMessages,
    maxSearchQueryBytes: config.maxSearchQueryBytes,
  });
  // first: a tokens file that does not read fails the start before anything opens
  const access = createAccessControl({ config, logger });
  if (!access.registry.required && !isLoopbackHost(config.host) && !config.insecure) {
    access.close();
    throw new ConfigError(`--host ${config.host}: not a loopback address, and no token is configured`);
  }
  const ownsBackend = deps.backend === undefined;
  // the server's own registry: several servers in one process never share counts
  const metrics = config.metrics ? createMetrics() : null;
  const gate = createRequestGate({
    access,
    routes: {
      endpoint: GRAPHQL_ENDPOINT,
      graphiql: !config.production,
      metrics: metrics !== null,
      ui: config.ui,
    },
    metricsToken: config.metricsToken,
  });
  const backend =
    deps.backend ??
    (await openBackend({
      kind: config.backend,
      dataDir: config.dataDir,
      databaseUrl: config.databaseUrl ?? undefined,
      databaseSchema: config.databaseSchema,
      poolSize: config.poolSize,
      lockTimeoutMs: config.lockTimeoutMs,
      limits,
      logger,
      onGroupCommit: metrics?.observeGroupCommit,
    }));
  let draining = false;
  const ownsBus = deps.bus === undefined;
  let bus: EventBus;
  try {
    bus = deps.bus ?? (await openBus(config, logger));
  } catch (err) {
    access.close();
    if (ownsBackend) await backend.close();
    throw err;
  }
  const events = metrics ? createCountingBus(bus, metrics.countPublished) : bus;
  const measured = metrics ? createInstrumentedBackend(backend, metrics.observeBackend) : backend;
  const served = createPublishingBackend(measured, events);
  const feed = createFeed({ backend: served, bus: events, limits, logger, options: deps.feed });

  const ttlTimer = await startTtlCleanup(config.sessionTtlHours, served, logger);
  const yoga = createYogaApp({
    backend: served,
    bus: events,
    limits,
    requestLimits: requestLimitsOf(config),
    logger,
    feed,
    metrics,
    maxOperationNames: config.metricsMaxOperationNames,
    access,
    ui: config.ui,
    isDraining: () => draining,
  });
  const httpServer = createServer(
    createRequestScope((req, res) => {
      const decision = gate.check(req);
      if (decision.refused) return writeRefusal(req, res, decision.refused);
      // the gate's principal reaches the context (createYogaApp) as part of the server context
      return yoga(req, res, { principal: decision.principal });
    }, logger),
  );
  const graphqlWs = attachGraphQLWs({
    httpServer,
    yoga,
    logger,
    access,
    gate,
    options: {
      maxPayloadBytes: config.wsMaxPayloadBytes,
      maxOperationsPerSocket: config.maxSubscriptionsPerConnection,
      messageRatePerSecond: config.wsMessageRate,
      messageBurst: config.wsMessageBurst,
      ...deps.graphqlWs,
    },
  });
  metrics?.countConnectionsWith(() => graphqlWs.connections);

  try {
    await listen(httpServer, config.port, config.host);
  } catch (err) {
    if (ttlTimer) clearInterval(ttlTimer);
    access.close();
    await graphqlWs.dispose();
    await feed.close();
    await yoga.dispose();
    if (ownsBus) await bus.close();
    if (ownsBackend) await backend.close();
    throw err;
  }
  const { port } = httpServer.address() as AddressInfo;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}/graphql`;
  logger.info({ url, backend: config.backend, dataDir: config.dataDir }, 'listening');
  if (!access.registry.required) {
    logger.warn(
      { host: config.host },
      isLoopbackHost(config.host)
        ? 'no tokens configured: every caller may read and write everything, so the server listens on loopback only'
        : 'no tokens configured and --insecure given: anyone who reaches this port may read and write everything',
    );
  }
  // the backend itself, not `served`: our own writes are published by the mutations
  const viaRedis = sharesEventsThroughRedis(config, backend);
  if (viaRedis)
    logger.info('other instances’ writes arrive through Redis; PostgreSQL notifications are not listened to');
  const watch = viaRedis ? { close: async () => {} } : startWatch(measured, events, logger);

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      draining = true;
      if (ttlTimer) clearInterval(ttlTimer);
      access.close();
      const drained = drain(httpServer, deps.drainTimeoutMs ?? 10_000);
      await graphqlWs.dispose();
      // server-sent event streams never end on their own: ending the feeds ends them
      await feed.close();
      await drained;
      await yoga.dispose();
      await watch.close();
      if (ownsBus) await bus.close();
      if (ownsBackend) await backend.close();
      logger.info('closed');
    })();
    return closing;
  };
  const reloadTokens = () => access.registry.reload();
  return { url, port, httpServer, yoga, backend: served, bus, reloadTokens, close };
}

export type SessionGraphYoga = YogaServerInstance<WsServerContext, Context>;

/**
 * The GraphQL app, transport-neutral: node:http serves it here, and graphql-ws runs operations
 * through the same instance (`yoga.getEnveloped`), so both share schema, context and plugins.
 */
function createYogaApp(deps: {
  backend: SessionBackend;
  bus: EventBus;
  limits: StoreLimits;
  requestLimits: RequestLimits;
  logger: Logger;
  feed: Feed;
  /** null: no `/metrics`. */
  metrics: Metrics | null;
  /** Distinct operation names kept as metric labels (use-metrics.ts). */
  maxOperationNames: number;
  access: AccessControl;
  /** Serve the dashboard (src/ui/). */
  ui: boolean;
  isDraining: () => boolean;
}): SessionGraphYoga {
  const { backend, limits, logger, feed, metrics } = deps;
  return createYoga<WsServerContext, Context>({
    schema,
    // the request's child logger (its request id): graphql-ws passes it, HTTP requests run in its scope
    // the backend and the feeds as the caller's token may use them (src/auth/)
    // (the request gate authenticated HTTP callers, connection_init WebSocket ones)
    context: ({ connection, logger: own, principal }) => {
      const caller = deps.access.principalOf(principal);
      return {
        ...deps.access.scope(caller, { backend, feed }),
        principal: caller,
        limits,
        logger: own ?? currentLogger(logger),
        connection,
      };
    },
    graphqlEndpoint: GRAPHQL_ENDPOINT,
    cors: (request) => deps.access.cors(request),
    logging: toYogaLogger(logger),
    graphiql: deps.requestLimits.production ? false : { title: 'sessiongraph' },
    landingPage: false,
    // never the original error's message or stack in a response, whatever NODE_ENV says
    maskedErrors: { isDev: false },
    // ours (src/limits/body-limit.ts) says the limit and the size
    maxRequestBodySize: false,
    plugins: [
      // first, to time the whole request; before useSharedSubscriptionExecution in any case
      ...(metrics ? [useMetrics(metrics, { maxOperationNames: deps.maxOperationNames })] : []),
      // next: a refused request costs no further work
      ...limitPlugins(deps.requestLimits),
      // Compiled execution (graphql-jit), cached per parsed document (yoga's parse cache bounds it):
      // about a quarter less CPU per request on our own operations. Subscriptions keep graphql-js.
      useGraphQlJit(
        {},
        {
          enableIf: (args) =>
            getOperationAST(args.document, args.operationName)?.operation !== 'subscription',
          onError: (result) =>
            logger.warn({ errors: result.errors }, 'graphql-jit could not compile an operation'),
        },
      ),
      useAppErrors(),
      // the page and its assets; the page then calls /graphql like any client, token and all
      ...(deps.ui ? [useDashboard({ logger })] : []),
      useReadinessCheck({
        endpoint: '/ready',
        check: createReadinessCheck({ backend, bus: deps.bus, isDraining: deps.isDraining, logger }),
      }),
      // last: it ends the onSubscribe chain (see the file) and formats subscription results itself
      useSharedSubscriptionExecution({
        logger,
        observer: metrics?.subscriptions,
        // what a live result shows depends on the key prefix of the caller's token, nothing else
        scopeOf: (context) => (context as Context).principal.prefix ?? '',
      }),
    ],
  });
}

function requestLimitsOf(config: Config): RequestLimits {
  return {
    maxBodyBytes: config.maxBodyBytes,
    maxVariableValues: 4 * config.maxBatchMessages + 1_000,
    production: config.production,
    query: {
      maxDepth: config.maxQueryDepth,
      maxCost: config.maxQueryCost,
      maxAliases: config.maxAliases,
      maxTokens: config.maxQueryTokens,
      maxDirectives: config.maxDirectives,
      maxPageSize: config.maxPageSize,
    },
  };
}

/**
 * With Redis, the other PostgreSQL instances' events already arrive through it: listening to their
 * notifications as well would publish each write again on the shared bus, once per instance.
 */
function sharesEventsThroughRedis(config: Config, backend: SessionBackend): boolean {
  return config.redisUrl !== null && backend.info().kind === 'postgres';
}

/** The Redis bus when a Redis URL is configured (several instances), else the in-process one. */
async function openBus(config: Config, logger: Logger): Promise<EventBus> {
  if (config.redisUrl === null) return createLocalEventBus();
  return createRedisEventBus({ url: config.redisUrl, prefix: config.redisPrefix, logger });
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Stops accepting, lets in-flight requests finish, and closes keep-alive connections as they go
 * idle; after `timeoutMs` whatever is left is dropped.
 */
function drain(server: Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const idle = setInterval(() => server.closeIdleConnections(), 50);
    const force = setTimeout(() => server.closeAllConnections(), timeoutMs);
    server.close(() => {
      clearInterval(idle);
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** Removes stale sessions now (before serving) and then hourly; returns the timer, if any. */
async function startTtlCleanup(
  ttlHours: number | null,
  backend: SessionBackend,
  logger: Logger,
): Promise<NodeJS.Timeout | undefined> {
  if (ttlHours === null) return undefined;
  const cleanup = async () => {
    try {
      const removed = await backend.cleanupStale(ttlHours);
      if (removed.length > 0) logger.info({ ttlHours, removed: removed.length }, 'removed stale sessions');
    } catch (err) {
      logger.error({ err }, 'stale session cleanup failed');
    }
  };
  await cleanup();
  return setInterval(cleanup, TTL_INTERVAL_MS).unref();
}
