/**
 * Which browser origins may call the API: the `--cors-origin` list, or by default only pages served
 * from loopback (and the server's own origin). A request without an Origin header is not from a
 * browser page (curl, the CLI, server-side clients) and is allowed; tokens guard those.
 */

export interface OriginPolicy {
  /**
   * Whether a request carrying this Origin may proceed.
   * @param host the request's Host header: a page served by this server is same-origin
   */
  allows(origin: string | null | undefined, host?: string | null): boolean;
}

const LOOPBACK_HOSTNAMES = new Set(['localhost', '127.0.0.1', '[::1]']);

export function createOriginPolicy(configured: readonly string[]): OriginPolicy {
  const allowed = new Set(configured.map(normalizeOrigin));
  const any = allowed.has('*');
  return {
    allows(origin, host) {
      if (origin === undefined || origin === null) return true;
      if (any) return true;
      let url: URL;
      try {
        url = new URL(origin);
      } catch {
        return false;
      }
      if (host && url.host === host.toLowerCase()) return true;
      if (allowed.size > 0) return allowed.has(normalizeOrigin(origin));
      return (url.protocol === 'http:' || url.protocol === 'https:') && LOOPBACK_HOSTNAMES.has(url.hostname);
    },
  };
}

/** `https://Example.com:443/` -> `https://example.com`: origins compare as URL origins. */
export function normalizeOrigin(origin: string): string {
  if (origin === '*') return origin;
  try {
    return new URL(origin).origin;
  } catch {
    return origin;
  }
}

/** Whether a listen address reaches only this machine. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^127(\.\d{1,3}){3}$/.test(bare);
}

/** Whether a Host header names this machine's loopback interface. */
export function isLoopbackHostHeader(host: string | null | undefined): boolean {
  if (!host) return false;
  try {
    return isLoopbackHost(new URL(`http://${host}`).hostname);
  } catch {
    return false;
  }
}
