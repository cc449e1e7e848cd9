/**
 * The soak run's settings, from command-line flags (`npm run soak -- --minutes 1 ...`). The
 * defaults are the full run of issue 7; .ci/run passes a short one.
 */

import { Command, InvalidArgumentError } from 'commander';

export interface SoakOptions {
  /** Length of the load, in minutes (fractions allowed). @default 10 */
  minutes: number;
  /**
   * Appends per second, all writers together. Sized for two shared cores (README, "Soak run"):
   * about a quarter of a core for the server with 500 subscribers, leaving room for the restart's
   * reconnect storm, the replays and the neighbours.
   * @default 40 // appends per second
   */
  rate: number;
  /**
   * Concurrent writers sharing `rate`, each one append at a time: enough that one slow answer
   * (the machine is shared) does not cost the run its rate. @default 20
   */
  writers: number;
  /**
   * The share of acknowledged appends a writer sends again with the same clientMessageId, as a
   * client that lost the answer would; each must come back as a replay. @default 0.05
   */
  resendShare: number;
  /** Sessions the writers spread their appends over. @default 50 */
  sessions: number;
  /** Live subscribers, each following one session from its first message. @default 500 */
  subscribers: number;
  /** The share of subscribers over server-sent events; the rest use graphql-ws. @default 0.1 */
  sseShare: number;
  /** Dashboards polling `sessions` and `messages` over HTTP. @default 10 */
  dashboards: number;
  /** Seconds between one dashboard's polls. @default 2 */
  pollSeconds: number;
  /**
   * Mean seconds between a subscriber's random disconnects (exponentially distributed); it resumes
   * from its last cursor after up to a second.
   * @default 60
   */
  disconnectSeconds: number;
  /**
   * Seconds of each server process's life counted as warm-up: code compiled, heap sized, every
   * subscriber connected. The RSS baseline is read at its end.
   * @default 60
   */
  warmupSeconds: number;
  /** Seed of the random choices (sessions, disconnects), to replay a run. @default 1 */
  seed: number;
}

function positive(name: string, integer: boolean) {
  return (text: string): number => {
    const value = Number(text);
    if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
      throw new InvalidArgumentError(`${name} must be a positive ${integer ? 'integer' : 'number'}`);
    }
    return value;
  };
}

function share(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0 || value > 1)
    throw new InvalidArgumentError('must be from 0 to 1');
  return value;
}

export function parseSoakOptions(argv: string[]): SoakOptions {
  const program = new Command('soak')
    .description('a bounded soak run of sessiongraph on loopback (bench/soak)')
    .option('--minutes <n>', 'length of the load in minutes', positive('minutes', false), 10)
    .option('--rate <n>', 'appends per second, all writers together', positive('rate', false), 40)
    .option('--writers <n>', 'concurrent writers', positive('writers', true), 20)
    .option('--resend-share <x>', 'share of acknowledged appends sent again (0 to 1)', share, 0.05)
    .option('--sessions <n>', 'sessions written to', positive('sessions', true), 50)
    .option('--subscribers <n>', 'live subscribers', positive('subscribers', true), 500)
    .option('--sse-share <x>', 'share of subscribers over SSE (0 to 1)', share, 0.1)
    .option('--dashboards <n>', 'polling dashboards', positive('dashboards', true), 10)
    .option('--poll-seconds <n>', 'seconds between polls', positive('poll seconds', false), 2)
    .option(
      '--disconnect-seconds <n>',
      'mean seconds between random disconnects',
      positive('disconnect seconds', false),
      60,
    )
    .option('--warmup-seconds <n>', 'warm-up of each server process', positive('warm-up seconds', false), 60)
    .option('--seed <n>', 'seed of the random choices', positive('seed', true), 1)
    .parse(argv);
  return program.opts<SoakOptions>();
}
