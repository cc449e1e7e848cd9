/**
 * The server's Prometheus instruments, on a registry of its own (never prom-client's global one,
 * so several servers in one process each count their own). The GraphQL request metrics come from
 * yoga's Prometheus plugin (use-metrics.ts) on the same registry; the rest are fed by small
 * decorators and hooks, so that neither the backends nor the event model import prom-client:
 * - backend operation latency: instrumented-backend.ts wraps the SessionBackend;
 * - events published: counting-bus.ts wraps the EventBus;
 * - events delivered, live subscriptions, slow-consumer drops: the subscription observer of
 *   use-shared-subscription-execution.ts;
 * - WebSocket connections: read from the graphql-ws server at scrape time;
 * - SQLite group-commit batch sizes: the backend's `onGroupCommit` hook.
 * Plus Node's process metrics (memory, CPU, event-loop lag, GC), prom-client's defaults: one set
 * per process, registered on every server's registry (see processMetrics).
 */

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { SubscriptionObserver, SubscriptionProbe } from '../schema/use-shared-subscription-execution.js';

export interface Metrics {
  readonly registry: Registry;
  /** One backend call took `seconds`; `outcome` is `ok` or the error code it failed with. */
  observeBackend(operation: string, outcome: string, seconds: number): void;
  /** One event was published on the bus (by a mutation, the TTL cleanup or the external-change watch). */
  countPublished(type: string): void;
  /** A transaction of the SQLite write queue held `requests` writes of `rows` rows (committed or not). */
  observeGroupCommit(requests: number, rows: number): void;
  /** Feeds the live-subscription metrics. */
  readonly subscriptions: SubscriptionObserver;
  /** Where the open WebSocket count is read at each scrape. */
  countConnectionsWith(count: () => number): void;
}

/** Seconds: a SQLite read is tens of microseconds, a PostgreSQL write some milliseconds. */
const BACKEND_BUCKETS = [
  0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];
/** Writes per group transaction: powers of two up to MAX_GROUP_REQUESTS (256). */
const GROUP_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/**
 * prom-client's default collectors, made once per process: each call of collectDefaultMetrics
 * starts a GC PerformanceObserver and an event-loop delay monitor that nothing ever stops, so a
 * process that starts many servers (tests, an embedding application) would gather them. The
 * figures are the process's anyway, the same for every server in it.
 */
let processMetrics: Registry | undefined;

function registerProcessMetrics(registry: Registry): void {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  for (const { name } of processMetrics.getMetricsAsArray()) {
    const metric = processMetrics.getSingleMetric(name);
    if (metric) registry.registerMetric(metric);
  }
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  const registers = [registry];
  registerProcessMetrics(registry);

  const backend = new Histogram({
    name: 'sessiongraph_backend_operation_duration_seconds',
    help: 'Time spent in storage calls, by SessionBackend method and outcome (ok or the error code)',
    labelNames: ['operation', 'outcome'],
    buckets: BACKEND_BUCKETS,
    registers,
  });
  const published = new Counter({
    name: 'sessiongraph_events_published_total',
    help: 'Session events published on the event bus by this instance, by event type',
    labelNames: ['type'],
    registers,
  });
  const groupRequests = new Histogram({
    name: 'sessiongraph_sqlite_group_commit_requests',
    help: 'Writes per SQLite group-commit transaction',
    buckets: GROUP_BUCKETS,
    registers,
  });
  const groupRows = new Histogram({
    name: 'sessiongraph_sqlite_group_commit_rows',
    help: 'Rows (messages) per SQLite group-commit transaction',
    buckets: [1, 4, 16, 64, 256, 1_024, 4_096, 10_000],
    registers,
  });
  const active = new Gauge({
    name: 'sessiongraph_subscriptions_active',
    help: 'Live subscriptions open now (WebSocket and server-sent events), by root field',
    labelNames: ['field'],
    registers,
  });
  const started = new Counter({
    name: 'sessiongraph_subscriptions_started_total',
    help: 'Live subscriptions opened, by root field',
    labelNames: ['field'],
    registers,
  });
  const ended = new Counter({
    name: 'sessiongraph_subscriptions_ended_total',
    help: 'Live subscriptions ended, by root field and reason (complete: the client left or the feed ended; else the error code)',
    labelNames: ['field', 'reason'],
    registers,
  });
  const delivered = new Counter({
    name: 'sessiongraph_events_delivered_total',
    help: 'Results delivered to live subscribers (one per subscriber and event), by root field',
    labelNames: ['field'],
    registers,
  });
  const overflows = new Counter({
    name: 'sessiongraph_feed_overflows_total',
    help: 'Subscriptions ended with FEED_OVERFLOW because the client read too slowly, by root field',
    labelNames: ['field'],
    registers,
  });
  let connections: () => number = () => 0;
  new Gauge({
    name: 'sessiongraph_websocket_connections',
    help: 'Open graphql-ws WebSocket connections',
    registers,
    collect() {
      this.set(connections());
    },
  });

  return {
    registry,
    observeBackend: (operation, outcome, seconds) => backend.observe({ operation, outcome }, seconds),
    countPublished: (type) => published.inc({ type }),
    observeGroupCommit(requests, rows) {
      groupRequests.observe(requests);
      groupRows.observe(rows);
    },
    subscriptions: createSubscriptionObserver({ active, started, ended, delivered, overflows }),
    countConnectionsWith(count) {
      connections = count;
    },
  };
}

interface SubscriptionInstruments {
  active: Gauge<'field'>;
  started: Counter<'field'>;
  ended: Counter<'field' | 'reason'>;
  delivered: Counter<'field'>;
  overflows: Counter<'field'>;
}

/** Label children are looked up once per root field (a handful), not on every delivered event. */
function createSubscriptionObserver(m: SubscriptionInstruments): SubscriptionObserver {
  const byField = new Map<
    string,
    { active: Gauge.Internal<'field'>; delivered: Counter.Internal; overflows: Counter.Internal }
  >();
  const childrenOf = (field: string) => {
    let children = byField.get(field);
    if (!children) {
      children = {
        active: m.active.labels(field),
        delivered: m.delivered.labels(field),
        overflows: m.overflows.labels(field),
      };
      byField.set(field, children);
    }
    return children;
  };
  return {
    opened(field): SubscriptionProbe {
      const children = childrenOf(field);
      m.started.inc({ field });
      children.active.inc();
      return {
        delivered: () => children.delivered.inc(),
        closed(reason) {
          children.active.dec();
          m.ended.inc({ field, reason });
          if (reason === 'FEED_OVERFLOW') children.overflows.inc();
        },
      };
    },
  };
}
