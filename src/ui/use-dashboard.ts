/**
 * The built-in dashboard as a yoga plugin: `/ui/` serves the page, `/ui/app.js` and `/ui/app.css`
 * its assets, and `/` and `/ui` redirect to `/ui/`. The page talks to the server through the
 * public GraphQL API only, like any other client, and carries its own strict
 * Content-Security-Policy (dashboard-page.ts). Turned off with `--no-ui`.
 */

import type { Plugin } from 'graphql-yoga';
import type { Logger } from 'pino';
import { type DashboardAsset, loadDashboardAssets } from './dashboard-assets.js';
import { CONTENT_SECURITY_POLICY, SECURITY_HEADERS } from './dashboard-page.js';

/** The page's path; its assets sit beside it. */
export const DASHBOARD_PATH = '/ui/';

/** @default 31_536_000 // seconds (a year): versioned asset URLs never change content */
const IMMUTABLE_MAX_AGE = 31_536_000;

export function useDashboard(options: { logger: Logger }): Plugin {
  const { logger } = options;
  return {
    onRequest({ request, url, endResponse, fetchAPI }) {
      const path = url.pathname;
      const isRedirect = path === '/' || path === '/ui';
      if (!isRedirect && !path.startsWith(DASHBOARD_PATH)) return;
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        // `/` is not ours for other methods: yoga answers (404)
        if (isRedirect) return;
        endResponse(new fetchAPI.Response(null, { status: 405, headers: { allow: 'GET, HEAD' } }));
        return;
      }
      if (isRedirect) {
        // relative, so that it holds behind a proxy that mounts the server under a path
        endResponse(
          new fetchAPI.Response(null, { status: 302, headers: { location: 'ui/', ...SECURITY_HEADERS } }),
        );
        return;
      }
      return loadDashboardAssets()
        .then((assets) => {
          const name = path.slice(DASHBOARD_PATH.length);
          const found =
            name === ''
              ? assets.page
              : name === 'app.js'
                ? assets.script
                : name === 'app.css'
                  ? assets.style
                  : null;
          if (found === null) {
            endResponse(
              new fetchAPI.Response('Not found', { status: 404, headers: { ...SECURITY_HEADERS } }),
            );
            return;
          }
          endResponse(respond(found, found === assets.page, request, url, fetchAPI.Response));
        })
        .catch((err: unknown) => {
          logger.error({ err }, 'the dashboard could not be served');
          endResponse(new fetchAPI.Response('The dashboard is unavailable.', { status: 500 }));
        });
    },
  };
}

function respond(
  asset: DashboardAsset,
  isPage: boolean,
  request: Request,
  url: URL,
  Response: typeof globalThis.Response,
): Response {
  const etag = `"${asset.version}"`;
  const versioned = url.searchParams.get('v') === asset.version;
  const headers: Record<string, string> = {
    ...SECURITY_HEADERS,
    'content-type': asset.contentType,
    etag,
    'cache-control': versioned ? `public, max-age=${IMMUTABLE_MAX_AGE}, immutable` : 'no-cache',
  };
  if (isPage) headers['content-security-policy'] = CONTENT_SECURITY_POLICY;
  if (request.headers.get('if-none-match') === etag) return new Response(null, { status: 304, headers });
  return new Response(request.method === 'HEAD' ? null : asset.body, { status: 200, headers });
}
