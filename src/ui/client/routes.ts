/**
 * The page's state lives in the URL fragment, so a session or a search can be linked and the
 * back button works: `#/s/<key>` shows a session, `#/search/<query>` search results.
 */

export type Route =
  | { view: 'home' }
  | { view: 'session'; key: string; seq: number | null }
  | { view: 'search'; query: string };

export function sessionHref(key: string, seq?: number): string {
  return `#/s/${encodeURIComponent(key)}${seq === undefined ? '' : `/${seq}`}`;
}

export function searchHref(query: string): string {
  return `#/search/${encodeURIComponent(query)}`;
}

export function parseRoute(hash: string): Route {
  const session = /^#\/s\/([^/]*)(?:\/(\d+))?$/.exec(hash);
  if (session) {
    const key = decode(session[1]!);
    if (key !== null && key !== '')
      return { view: 'session', key, seq: session[2] ? Number(session[2]) : null };
  }
  const search = /^#\/search\/(.*)$/.exec(hash);
  if (search) {
    const query = decode(search[1]!);
    if (query !== null) return { view: 'search', query };
  }
  return { view: 'home' };
}

function decode(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}
