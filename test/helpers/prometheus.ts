/**
 * Reads a server's `/metrics` (Prometheus text format) into a map from series to value, e.g.
 * `sessiongraph_graphql_requests_total{operationName="Read",operationType="query"}` -> 2, labels
 * in sorted order so that tests can name a series without knowing the exporter's label order.
 */

export type Samples = Map<string, number>;

export async function scrapeMetrics(httpUrl: string): Promise<Samples> {
  const response = await fetch(new URL('/metrics', httpUrl));
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  if (!response.headers.get('content-type')?.startsWith('text/plain'))
    throw new Error(`/metrics is not Prometheus text: ${response.headers.get('content-type')}`);
  return parseMetrics(await response.text());
}

export function parseMetrics(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
    const [, name, labels = '', value] = match;
    samples.set(seriesName(name!, parseLabels(labels)), Number(value));
  }
  return samples;
}

/** The key of one series: `name{a="1",b="2"}` with the labels sorted, or `name` without labels. */
export function seriesName(name: string, labels: Record<string, string | number> = {}): string {
  const pairs = Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${JSON.stringify(String(v))}`);
  return pairs.length === 0 ? name : `${name}{${pairs.join(',')}}`;
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [, key, value] of text.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
    labels[key!] = JSON.parse(`"${value}"`) as string;
  }
  return labels;
}

/** How much each named series moved between two scrapes (absent counts as 0). */
export function delta(
  before: Samples,
  after: Samples,
  name: string,
  labels?: Record<string, string | number>,
) {
  const key = seriesName(name, labels);
  return (after.get(key) ?? 0) - (before.get(key) ?? 0);
}
