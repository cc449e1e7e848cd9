/**
 * `/metrics`: yoga's Prometheus plugin on our registry (metrics.ts), serving the registry in the
 * Prometheus text format, with the GraphQL request metrics:
 * - `sessiongraph_graphql_requests_total{operationName, operationType}`: queries and mutations run;
 * - `sessiongraph_graphql_errors_total{operationName, operationType, phase}`: errors in results,
 *   and documents that failed to parse, validate or build a context;
 * - `sessiongraph_graphql_request_duration_seconds{operationName, operationType}`: execution time;
 * - `sessiongraph_http_request_duration_seconds{operationName, operationType, method, statusCode}`:
 *   from the request to the response head.
 *
 * Subscriptions are left to the subscription observer (use-shared-subscription-execution.ts): the
 * plugin's subscription hooks would wrap every subscriber's stream in more async iterators, which
 * the shared execution exists to avoid, and must run after it anyway.
 *
 * Operation names are the client's choice, and `/metrics` shows them (to admin tokens only, see
 * src/transport/request-gate.ts). So a label takes a name only when it is a GraphQL name of at most
 * 64 characters that names an operation in the request's document (the `operationName` a client
 * sends is otherwise any string, of any length), and only the first `maxOperationNames` distinct
 * ones; anything else is counted as `other`. No client can grow the registry without bound.
 */

import { createCounter, createHistogram, usePrometheus } from '@graphql-yoga/plugin-prometheus';
import { type DocumentNode, Kind } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Metrics } from './metrics.js';

/** @default 100 // distinct operation names kept as labels; later ones become `other` */
export const DEFAULT_MAX_OPERATION_NAMES = 100;

/** A GraphQL name, at most 64 characters: longer ones are counted as `other`. */
const LABEL_NAME = /^[_A-Za-z][_0-9A-Za-z]{0,63}$/;

/** Seconds, from a cached read (sub-millisecond) to a slow search. */
const REQUEST_BUCKETS = [0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface OperationParams {
  operationName?: string | undefined;
  operationType?: string | undefined;
  document?: DocumentNode | undefined;
}

export function useMetrics(
  metrics: Metrics,
  options: {
    endpoint?: string;
    /** @default DEFAULT_MAX_OPERATION_NAMES */
    maxOperationNames?: number;
  } = {},
): Plugin {
  const { registry } = metrics;
  const maxNames = options.maxOperationNames ?? DEFAULT_MAX_OPERATION_NAMES;
  const names = new Set<string>();
  const nameOf = (params: OperationParams): string => {
    const name = params.operationName;
    if (name === undefined || name === 'Anonymous') return 'Anonymous';
    if (names.has(name)) return name;
    if (!LABEL_NAME.test(name) || names.size >= maxNames || !namesOperation(params.document, name))
      return 'other';
    names.add(name);
    return name;
  };
  const operation = (params: OperationParams) => ({
    operationName: nameOf(params),
    operationType: params.operationType ?? 'unknown',
  });

  return usePrometheus({
    registry,
    endpoint: options.endpoint ?? '/metrics',
    metrics: {
      graphql_envelop_request: createCounter({
        registry,
        counter: {
          name: 'sessiongraph_graphql_requests_total',
          help: 'GraphQL queries and mutations executed, by operation',
          labelNames: ['operationName', 'operationType'],
        },
        fillLabelsFn: operation,
        phases: ['execute'],
      }),
      graphql_envelop_error_result: createCounter({
        registry,
        counter: {
          name: 'sessiongraph_graphql_errors_total',
          help: 'GraphQL errors, by operation and phase (parse, validate, context, execute)',
          labelNames: ['operationName', 'operationType', 'phase'],
        },
        fillLabelsFn: (params: OperationParams & { errorPhase?: string }) => ({
          ...operation(params),
          phase: params.errorPhase ?? 'execute',
        }),
        phases: ['parse', 'validate', 'context', 'execute'],
      }),
      graphql_envelop_request_duration: createHistogram({
        registry,
        histogram: {
          name: 'sessiongraph_graphql_request_duration_seconds',
          help: 'Time to execute a GraphQL query or mutation, by operation',
          labelNames: ['operationName', 'operationType'],
          buckets: REQUEST_BUCKETS,
        },
        fillLabelsFn: operation,
        phases: ['execute'],
      }),
      graphql_yoga_http_duration: createHistogram({
        registry,
        histogram: {
          name: 'sessiongraph_http_request_duration_seconds',
          help: 'Time from a GraphQL HTTP request to its response head, by operation, method and status',
          labelNames: ['operationName', 'operationType', 'method', 'statusCode'],
          buckets: REQUEST_BUCKETS,
        },
        fillLabelsFn: (params: OperationParams & { request: Request; response: Response }) => ({
          ...operation(params),
          method: params.request.method,
          statusCode: params.response.status,
        }),
        phases: ['request'],
      }),
      graphql_envelop_request_time_summary: false,
      graphql_envelop_phase_parse: false,
      graphql_envelop_phase_validate: false,
      graphql_envelop_phase_context: false,
      graphql_envelop_phase_execute: false,
      graphql_envelop_phase_subscribe: false,
      graphql_envelop_deprecated_field: false,
      graphql_envelop_schema_change: false,
      graphql_envelop_execute_resolver: false,
    },
  });
}

/** Whether the document holds an operation of this name (without one, a name cannot be checked). */
function namesOperation(document: DocumentNode | undefined, name: string): boolean {
  return (
    document?.definitions.some(
      (definition) => definition.kind === Kind.OPERATION_DEFINITION && definition.name?.value === name,
    ) ?? false
  );
}
