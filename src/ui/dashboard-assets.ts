/**
 * The dashboard's script and stylesheet, bundled from their TypeScript and CSS sources
 * (src/ui/client/, src/ui/graphql/) by esbuild, in memory, on the first request for the page:
 * a server nobody opens the dashboard of never loads esbuild. The bundle is kept for the life of
 * the process (the sources do not change under it) and shared by every server in it.
 *
 * The sources are found from this module's own place: `../../src/ui/client/` is the same folder
 * from src/ui/ (tsx) and from dist/ui/ (the build), so `npm start` and `dist/cli.js` serve the same
 * page without a build step for it.
 */

import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { dashboardPage } from './dashboard-page.js';

export interface DashboardAsset {
  readonly body: string;
  readonly contentType: string;
  /** 16 hex digits of SHA-256 over the body: the ETag and the version in asset URLs. */
  readonly version: string;
}

export interface DashboardAssets {
  readonly page: DashboardAsset;
  readonly script: DashboardAsset;
  readonly style: DashboardAsset;
}

const ENTRY = fileURLToPath(new URL('../../src/ui/client/main.ts', import.meta.url));
const CLIENT_TSCONFIG = fileURLToPath(new URL('../../src/ui/client/tsconfig.json', import.meta.url));

let bundled: Promise<DashboardAssets> | undefined;

/** The assets, bundled on the first call; a failed bundle is tried again on the next call. */
export function loadDashboardAssets(): Promise<DashboardAssets> {
  bundled ??= bundle().catch((err: unknown) => {
    bundled = undefined;
    throw err;
  });
  return bundled;
}

async function bundle(): Promise<DashboardAssets> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [ENTRY],
    tsconfig: CLIENT_TSCONFIG,
    bundle: true,
    write: false,
    // a name only: nothing is written; the output files come back as `main.js` and `main.css`
    outdir: 'dashboard',
    platform: 'browser',
    format: 'iife',
    target: ['chrome110', 'firefox115', 'safari16'],
    loader: { '.graphql': 'text' },
    minify: true,
    legalComments: 'none',
    charset: 'utf8',
    logLevel: 'silent',
  });
  const output = (extension: string) => {
    const file = result.outputFiles.find((f) => f.path.endsWith(extension));
    if (!file) throw new Error(`esbuild produced no ${extension} file for the dashboard`);
    return file.text;
  };
  const script = asset(output('.js'), 'text/javascript; charset=utf-8');
  const style = asset(output('.css'), 'text/css; charset=utf-8');
  const page = asset(
    dashboardPage({ script: script.version, style: style.version }),
    'text/html; charset=utf-8',
  );
  return { page, script, style };
}

function asset(body: string, contentType: string): DashboardAsset {
  return { body, contentType, version: createHash('sha256').update(body).digest('hex').slice(0, 16) };
}
