/**
 * Reads the server's RSS and CPU time once a second, tagged with which server process (the run
 * restarts it once) and how long that process had been serving. The RSS figures compare medians
 * of a few seconds of samples, so that one garbage collection does not decide a verdict.
 */

import type { ServerProcess } from './server-process.js';

export interface Sample {
  /** 1 for the first server process, 2 after the restart. */
  process: number;
  /** ms since that process printed its URL. */
  ageMs: number;
  /** ms since the load started. */
  atMs: number;
  rssKiB: number;
  cpuSeconds: number;
  /** V8 heap in use (prom-client's `nodejs_heap_size_used_bytes` from /metrics), in KiB. */
  heapUsedKiB: number | null;
}

/** Samples each RSS median takes: 5 s at one a second. @default 5_000 // ms */
export const WINDOW_MS = 5_000;

export class Sampler {
  readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private current: { server: ServerProcess; process: number; since: number } | undefined;

  constructor(private readonly loadStart: number) {}

  /** Samples `server` from now on, as process number `process`. */
  follow(server: ServerProcess, process: number): void {
    this.current = { server, process, since: performance.now() };
    this.timer ??= setInterval(() => this.sample(), 1_000);
  }

  /** No server to sample (stopping or restarting). */
  pause(): void {
    this.current = undefined;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Median RSS of `process` over the window ending `ageMs` into its life. */
  rssAtAge(process: number, ageMs: number): number | null {
    return median(
      this.samples.filter((s) => s.process === process && s.ageMs > ageMs - WINDOW_MS && s.ageMs <= ageMs),
    );
  }

  /** Median RSS of `process` over the window ending at `atMs` of the load. */
  rssAt(process: number, atMs: number): number | null {
    return median(
      this.samples.filter((s) => s.process === process && s.atMs > atMs - WINDOW_MS && s.atMs <= atMs),
    );
  }

  /** The last sample of a process: its CPU time used and how long it had served. */
  last(process: number): Sample | undefined {
    return this.samples.findLast((s) => s.process === process);
  }

  /**
   * Lowest heap in use of `process` over the `spanMs` ending at `atMs` of the load: about what
   * the last major collection left alive, which RSS (a sawtooth between collections) hides.
   */
  heapFloorAt(process: number, atMs: number, spanMs: number): number | null {
    const heaps = this.samples
      .filter((s) => s.process === process && s.atMs > atMs - spanMs && s.atMs <= atMs)
      .map((s) => s.heapUsedKiB)
      .filter((h): h is number => h !== null);
    return heaps.length === 0 ? null : Math.min(...heaps);
  }

  private sample(): void {
    if (!this.current) return;
    const { server, process, since } = this.current;
    const rssKiB = server.rssKiB();
    const cpuSeconds = server.cpuSeconds();
    if (rssKiB === null || cpuSeconds === null) return;
    const now = performance.now();
    const sample: Sample = {
      process,
      ageMs: now - since,
      atMs: now - this.loadStart,
      rssKiB,
      cpuSeconds,
      heapUsedKiB: null,
    };
    this.samples.push(sample);
    heapUsed(server.url).then((kib) => {
      sample.heapUsedKiB = kib;
    });
  }
}

/** The server's heap in use from its /metrics, in KiB; null when it cannot be read. */
async function heapUsed(graphqlUrl: string): Promise<number | null> {
  try {
    const response = await fetch(new URL('/metrics', graphqlUrl), { signal: AbortSignal.timeout(900) });
    const m = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(await response.text());
    return m ? Math.round(Number(m[1]) / 1_024) : null;
  } catch {
    return null;
  }
}

function median(samples: Sample[]): number | null {
  if (samples.length === 0) return null;
  const sorted = samples.map((s) => s.rssKiB).sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
