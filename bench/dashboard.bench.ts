/**
 * The dashboard's weight and first-load cost: `npx tsx bench/dashboard.bench.ts [--quick]`.
 *
 * A real server on port 0 (SQLite in a temp workspace): the first `GET /ui/` bundles the page code
 * with esbuild (src/ui/dashboard-assets.ts), so its time is what the first visitor after a start
 * waits; later requests are served from memory. Then the bytes a browser downloads (raw and
 * gzip), and the time of a cached asset request. One printed line per figure.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { startTestServer } from '../test/helpers/server.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 200 : 2_000;

const dataDir = mkdtempSync(join(tmpdir(), 'sg-bench-ui-'));
const t = await startTestServer('sqlite', { dataDir });
try {
  const origin = new URL(t.url).origin;
  const started = performance.now();
  const page = await fetch(`${origin}/ui/`);
  const html = await page.text();
  console.log(`first GET /ui/ (bundles the page code): ${(performance.now() - started).toFixed(0)} ms`);

  const assets = [...html.matchAll(/(?:src|href)="(app\.(?:js|css)\?v=[0-9a-f]+)"/g)].map((m) => m[1]!);
  let raw = Buffer.byteLength(html);
  let gzipped = gzipSync(html).length;
  for (const path of assets) {
    const body = Buffer.from(await (await fetch(`${origin}/ui/${path}`)).arrayBuffer());
    raw += body.length;
    gzipped += gzipSync(body).length;
    console.log(`${path.split('?')[0]}: ${body.length} bytes, ${gzipSync(body).length} gzipped`);
  }
  console.log(`page total: ${raw} bytes, ${gzipped} gzipped`);

  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const at = performance.now();
    await (await fetch(`${origin}/ui/${assets[0]}`)).arrayBuffer();
    times.push(performance.now() - at);
  }
  times.sort((a, b) => a - b);
  console.log(`cached asset GET p50: ${times[Math.floor(ROUNDS / 2)]!.toFixed(2)} ms`);
  console.log(`cached asset GET p99: ${times[Math.floor(ROUNDS * 0.99)]!.toFixed(2)} ms`);
} finally {
  await t.close();
  rmSync(dataDir, { recursive: true, force: true });
}
