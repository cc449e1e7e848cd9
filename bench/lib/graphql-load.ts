/**
 * One GraphQL operation as HTTP load (autocannon, POST, keep-alive connections), counting every
 * response that is not a success as a failure.
 */

import autocannon from 'autocannon';

export interface GraphQLLoad {
  url: string;
  connections: number;
  seconds: number;
  query: string;
  /** Fixed variables, or the variables of the n-th request (n counts from `first`). */
  variables?: Record<string, unknown> | ((n: number) => Record<string, unknown>);
  /** @default 0 */
  first?: number;
  /** Added to `content-type: application/json`, e.g. an authorization header. */
  headers?: Record<string, string>;
  /**
   * Whether a 200 response's body is a success.
   * @default no `"errors"` and no `"code"` in it // no GraphQL error, no typed error result
   */
  ok?: (body: string) => boolean;
}

export interface LoadResult {
  /** Mean requests per second. */
  rps: number;
  /** Requests completed. */
  total: number;
  /** Latency percentiles and mean, milliseconds. */
  p50: number;
  p99: number;
  mean: number;
  /** Responses that were not a 200 with a successful body. */
  failures: number;
}

const noError = (body: string) => !body.includes('"errors"') && !body.includes('"code"');

export function loadGraphQL(load: GraphQLLoad): Promise<LoadResult> {
  const ok = load.ok ?? noError;
  const { variables } = load;
  let n = load.first ?? 0;
  let failures = 0;
  const bodyOf =
    typeof variables === 'function'
      ? () => JSON.stringify({ query: load.query, variables: variables(n++) })
      : (() => {
          const fixed = JSON.stringify({ query: load.query, variables });
          return () => fixed;
        })();
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: load.url,
        connections: load.connections,
        duration: load.seconds,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...load.headers },
        requests: [
          {
            setupRequest: (request) => ({ ...request, body: bodyOf() }),
            onResponse: (status, body) => {
              if (status !== 200 || !ok(body)) failures++;
            },
          },
        ],
      },
      (err, result) => {
        if (err) return reject(err);
        resolve({
          rps: result.requests.average,
          total: result.requests.total,
          p50: result.latency.p50,
          p99: result.latency.p99,
          mean: result.latency.average,
          failures,
        });
      },
    );
  });
}
