/**
 * One GraphQL operation over HTTP with fetch, as the soak's writers and dashboards send it. A
 * refused connection, a reset or a timeout (the server restarting) is a `down` outcome; any HTTP
 * answer is returned with its status and body.
 */

export type HttpOutcome =
  | { kind: 'answer'; status: number; body: { data?: unknown; errors?: Array<{ message: string }> } }
  | { kind: 'down'; reason: string };

/** Seconds a request may take before it counts as `down`. @default 10_000 // ms */
const TIMEOUT_MS = 10_000;

export async function postGraphql(
  url: string,
  query: string,
  variables: Record<string, unknown>,
): Promise<HttpOutcome> {
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    text = await response.text();
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    return { kind: 'down', reason: cause ?? (err as Error).name };
  }
  try {
    return { kind: 'answer', status: response.status, body: JSON.parse(text) as never };
  } catch {
    return { kind: 'answer', status: response.status, body: { errors: [{ message: text.slice(0, 500) }] } };
  }
}
