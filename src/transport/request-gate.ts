/**
 * The one gate in front of everything the port answers: every HTTP request and every upgrade
 * request is checked here, on node:http's IncomingMessage, before yoga or ws sees it, and is either
 * refused (a JSON body in the shape of every other refusal: `{ errors: [{ message, extensions:
 * { code } }] }`) or passed on with its caller's principal.
 *
 * Why here and hand-written rather than as yoga plugins: yoga matches its routes loosely (the
 * GraphQL endpoint also answers `/graphql/`, `/x/graphql`, and any URL whose text ends in
 * `/graphql`, query string included; the health check any URL ending in `/health`; its CORS plugin
 * answers OPTIONS on any path), and guards written as plugins keyed to the exact path let every
 * other spelling through. yoga has no option to match exactly, its form (urlencoded) parser
 * cannot be turned off, and its CSRF plugin (@graphql-yoga/plugin-csrf-prevention) asks
 * every client for a custom header rather than refusing form posts; and ws checks only the path of
 * an upgrade. So the accepted set is decided once, on the raw request target, and everything else is
 * refused:
 *
 * - the request target is compared as sent: no decoding, no normalising (`/graphql/`, `//graphql`,
 *   `/GRAPHQL`, `/%67raphql`, `/graphql/..`, `/x/../graphql`, absolute-form targets are all 404);
 * - `/graphql`: GET (queries, server-sent events with `Accept: text/event-stream`, GraphiQL's page
 *   with `Accept: text/html` when it is on), POST with `Content-Type: application/json`, spelt as
 *   yoga's parser reads it (a `charset` parameter, if any, must be utf-8; anything else 415),
 *   OPTIONS (CORS preflights), nothing else (405);
 *   a query string only on GET, where it carries the operation (400 on POST);
 * - `/health`, `/ready`, `/metrics` (unless off), and the dashboard (`/`, `/ui`, `/ui/<file>`, with
 *   at most its `?v=<version>`; unless off): GET and HEAD only, no other query string;
 * - without tokens (and without --insecure), only a loopback Host name (DNS rebinding), on every
 *   route; a browser Origin the policy refuses is refused on every route (403 FORBIDDEN);
 * - with tokens, every request that is not for a public route (health, readiness, the dashboard's
 *   static files, GraphiQL's page, CORS preflights) needs a known bearer token before anything
 *   else is said (401 UNAUTHENTICATED, also on paths that do not exist); `/metrics` needs an admin
 *   token or the metrics token (401, or 403 for a known token without admin).
 * - WebSocket upgrades: only on `/graphql` (query string ignored, as graphql-ws clients may add
 *   one), after the same Host and Origin checks; the token is sent in graphql-ws' connection_init
 *   (a browser cannot set headers on a WebSocket), but an Authorization header, if sent, must be
 *   valid.
 */

import { timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { MIMEType } from 'node:util';
import type { AccessControl } from '../auth/access-control.js';
import { canAdmin, type Principal } from '../auth/principal.js';
import { digestOf } from '../auth/token-spec.js';
import { ErrorCode } from '../errors.js';

/** The stable `extensions.code` of each refusal, with its HTTP status. */
export const GateCode = {
  /** 400: a request to the endpoint that it does not read (a query string on a POST), or a Host header that is not a host. */
  BadRequest: 'BAD_REQUEST',
  /** 401: no known bearer token, where one is required. */
  Unauthenticated: ErrorCode.Unauthenticated,
  /** 403: a Host name that is not loopback (without tokens), a browser Origin not allowed, a token without the scope. */
  Forbidden: ErrorCode.Forbidden,
  /** 404: a path (or query string) this server does not serve. */
  NotFound: 'NOT_FOUND',
  /** 405: a method the route does not take; the `allow` header lists those it does. */
  MethodNotAllowed: 'METHOD_NOT_ALLOWED',
  /** 415: a POST body that is not `application/json`. */
  UnsupportedMediaType: 'UNSUPPORTED_MEDIA_TYPE',
} as const;

export type GateCode = (typeof GateCode)[keyof typeof GateCode];

export interface Refusal {
  status: 400 | 401 | 403 | 404 | 405 | 415;
  code: GateCode;
  message: string;
  headers?: Record<string, string>;
}

/** What the gate decided: refuse, or pass on with the principal a bearer token named (if any). */
export type GateDecision = { refused: Refusal } | { refused?: undefined; principal: Principal | undefined };

export interface GateRoutes {
  /** The GraphQL endpoint, over HTTP, SSE and WebSocket. @default '/graphql' */
  endpoint: string;
  /** GraphiQL's page is served to a GET with `Accept: text/html` (yoga's graphiql option). */
  graphiql: boolean;
  /** `/metrics` is served. */
  metrics: boolean;
  /** The dashboard (`/`, `/ui`, `/ui/...`) is served. */
  ui: boolean;
}

export type GateAccess = Pick<AccessControl, 'registry' | 'origins' | 'hostAllowed'>;

export interface RequestGate {
  check(req: IncomingMessage): GateDecision;
  /** The same gate for an upgrade request: null lets ws take it. */
  checkUpgrade(req: IncomingMessage): Refusal | null;
}

const HEALTH_PATHS = new Set(['/health', '/ready']);
/** The dashboard's files: a plain name under `/ui/` (dotted names like `..` excluded). */
const UI_FILE = /^\/ui\/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*)?$/;
/** The dashboard's cache-busting query (dashboard-page.ts): `?v=<hex digest>`. */
const UI_QUERY = /^v=[0-9a-f]{1,64}$/;
const READ_ONLY = 'GET, HEAD';
const GRAPHQL_METHODS = 'GET, POST, OPTIONS';
/** A Host header as RFC 9110 has it: a name or IPv4 address, or a bracketed IPv6 one, and a port. */
const PLAIN_HOST = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

export function createRequestGate(deps: {
  access: GateAccess;
  routes: GateRoutes;
  /** SHA-256 of the secret that may read `/metrics` besides admin tokens. @default null */
  metricsToken?: Buffer | null;
}): RequestGate {
  const { access, routes } = deps;
  const metricsToken = deps.metricsToken ?? null;

  /** Host and Origin: the checks every route shares. */
  const checkBrowser = (req: IncomingMessage): Refusal | null => {
    const { host, origin } = req.headers;
    // yoga's adapter builds the URL it routes on from `http://` + Host + target: a Host carrying a
    // path or query (`x/metrics?`) would send a request this gate judged by its target elsewhere.
    if (host !== undefined && !PLAIN_HOST.test(host)) {
      return {
        status: 400,
        code: GateCode.BadRequest,
        message: 'The Host header must be a host name or address, with an optional port.',
      };
    }
    if (!access.hostAllowed(host)) {
      return forbidden(
        'Without tokens this server answers only requests addressed to a loopback name (localhost, 127.0.0.1, [::1]).',
      );
    }
    if (!access.origins.allows(origin, host)) {
      return forbidden('This page origin may not call this server (see --cors-origin).');
    }
    return null;
  };

  const authenticate = (req: IncomingMessage) =>
    access.registry.authenticate(bearerSecret(req.headers.authorization));

  const unauthenticated = (req: IncomingMessage): Refusal => ({
    status: 401,
    code: GateCode.Unauthenticated,
    message:
      req.headers.authorization === undefined
        ? 'This server requires a token: send `Authorization: Bearer <token>`.'
        : 'The bearer token is not valid.',
    headers: { 'www-authenticate': 'Bearer' },
  });

  const checkMetrics = (req: IncomingMessage): Refusal | null => {
    const secret = bearerSecret(req.headers.authorization);
    if (metricsToken !== null && secret !== null && timingSafeEqual(digestOf(secret), metricsToken))
      return null;
    if (!access.registry.required && metricsToken === null) return null;
    // without tokens the registry names everyone the open principal: only the metrics token counts
    const principal = access.registry.required ? access.registry.authenticate(secret) : null;
    if (principal === null) return unauthenticated(req);
    if (!canAdmin(principal)) return forbidden('/metrics needs an admin token or the metrics token.');
    return null;
  };

  return {
    check(req) {
      const refused = checkBrowser(req);
      if (refused) return { refused };
      const method = req.method ?? '';
      const { path, query } = splitTarget(req.url ?? '');
      const pass = { principal: undefined };

      const publicRoute = publicRouteOf(path, query, routes);
      if (publicRoute !== null) {
        if (method !== 'GET' && method !== 'HEAD') return { refused: methodNotAllowed(READ_ONLY) };
        if (publicRoute === 'metrics') {
          const metrics = checkMetrics(req);
          return metrics ? { refused: metrics } : pass;
        }
        return pass;
      }

      const isEndpoint = path === routes.endpoint;
      if (isEndpoint && method === 'OPTIONS') return pass;
      // GraphiQL's page is static; it sends the token (its Headers pane) with each operation
      if (isEndpoint && routes.graphiql && method === 'GET' && acceptsHtml(req)) return pass;

      let principal: Principal | null = null;
      if (access.registry.required) {
        principal = authenticate(req);
        if (principal === null) return { refused: unauthenticated(req) };
      }
      if (!isEndpoint) return { refused: notFound() };
      if (method === 'GET') return { principal: principal ?? undefined };
      if (method !== 'POST') return { refused: methodNotAllowed(GRAPHQL_METHODS) };
      if (query !== null) {
        return {
          refused: {
            status: 400,
            code: GateCode.BadRequest,
            message: 'A POST carries its operation in the body: no query string.',
          },
        };
      }
      const media = mediaTypeRefusal(req.headers['content-type']);
      if (media) return { refused: media };
      return { principal: principal ?? undefined };
    },

    checkUpgrade(req) {
      const refused = checkBrowser(req);
      if (refused) return refused;
      if (splitTarget(req.url ?? '').path !== routes.endpoint) return notFound();
      if (req.headers.authorization !== undefined && access.registry.required && authenticate(req) === null)
        return unauthenticated(req);
      return null;
    },
  };
}

/** Answers a refused HTTP request. */
export function writeRefusal(req: IncomingMessage, res: ServerResponse, refusal: Refusal): void {
  const body = refusalBody(refusal);
  res.writeHead(refusal.status, {
    ...responseHeaders(req, refusal),
    'content-length': Buffer.byteLength(body),
    // the body the client sent is not read: the connection cannot carry another request
    connection: 'close',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Answers a refused upgrade request on its raw socket, then closes it. */
export function writeUpgradeRefusal(req: IncomingMessage, socket: Duplex, refusal: Refusal): void {
  const body = refusalBody(refusal);
  const headers = {
    connection: 'close',
    ...responseHeaders(req, refusal),
    'content-length': String(Buffer.byteLength(body)),
  };
  const head = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}`)
    .join('\r\n');
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status]}\r\n${head}\r\n\r\n${body}`);
}

/** The secret of `Bearer <secret>` (scheme case-insensitive), or null. */
export function bearerSecret(header: string | null | undefined): string | null {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  return match ? match[1]! : null;
}

function refusalBody(refusal: Refusal): string {
  return JSON.stringify({ errors: [{ message: refusal.message, extensions: { code: refusal.code } }] });
}

function responseHeaders(req: IncomingMessage, refusal: Refusal): Record<string, string> {
  const { origin } = req.headers;
  return {
    'content-type': 'application/json; charset=utf-8',
    // an allowed page (the gate refused the others) may read why it was refused
    ...(origin !== undefined && refusal.code !== GateCode.Forbidden
      ? { 'access-control-allow-origin': origin, vary: 'Origin' }
      : {}),
    ...refusal.headers,
  };
}

/** The request target's path and query string, as sent (null: no `?`). */
function splitTarget(target: string): { path: string; query: string | null } {
  const mark = target.indexOf('?');
  return mark === -1
    ? { path: target, query: null }
    : { path: target.slice(0, mark), query: target.slice(mark + 1) };
}

/** Which public route the target names, or null. */
function publicRouteOf(
  path: string,
  query: string | null,
  routes: GateRoutes,
): 'health' | 'metrics' | 'ui' | null {
  if (HEALTH_PATHS.has(path)) return query === null ? 'health' : null;
  if (path === '/metrics' && routes.metrics) return query === null ? 'metrics' : null;
  if (!routes.ui) return null;
  if (path === '/' || path === '/ui') return query === null ? 'ui' : null;
  if (UI_FILE.test(path)) return query === null || UI_QUERY.test(query) ? 'ui' : null;
  return null;
}

/** yoga's own test for GraphiQL (use-graphiql.ts): a GET accepting HTML. */
function acceptsHtml(req: IncomingMessage): boolean {
  return req.headers.accept?.includes('text/html') ?? false;
}

/** The refusal for a POST body type other than JSON in UTF-8, or null. */
function mediaTypeRefusal(header: string | undefined): Refusal | null {
  let type: MIMEType | null = null;
  try {
    // spelt as yoga's JSON parser matches it (lowercase, parameters after `;`), so that what
    // passes here is what yoga reads
    if (header === 'application/json' || header?.startsWith('application/json;')) type = new MIMEType(header);
  } catch {
    type = null;
  }
  const charset = type?.params.get('charset')?.toLowerCase();
  if (type !== null && (charset === undefined || charset === 'utf-8')) return null;
  const got = header === undefined ? 'no content type' : JSON.stringify(header.slice(0, 100));
  return {
    status: 415,
    code: GateCode.UnsupportedMediaType,
    message:
      `POST requests must send \`Content-Type: application/json\` (UTF-8); got ${got}. A form or text/plain ` +
      'body could come from another site (CSRF); a query may also come as a GET with query parameters.',
  };
}

function forbidden(message: string): Refusal {
  return { status: 403, code: GateCode.Forbidden, message };
}

function notFound(): Refusal {
  return { status: 404, code: GateCode.NotFound, message: 'Not found.' };
}

function methodNotAllowed(allow: string): Refusal {
  return {
    status: 405,
    code: GateCode.MethodNotAllowed,
    message: `This path takes ${allow}.`,
    headers: { allow },
  };
}
