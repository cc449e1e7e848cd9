/**
 * The process logger: pino, one JSON object per line on stderr, or pino-pretty's coloured lines
 * when stderr is a terminal (a person is reading). Everything logged while a request is being
 * served carries its request id (`reqId`): resolvers use the child logger on their context, and
 * the lines that code without a context writes (yoga's own, masked errors) find the request's
 * logger through `runWithLogger`.
 */

import { AsyncLocalStorage } from 'node:async_hooks';
import { format } from 'node:util';
import { GraphQLError } from 'graphql';
import type { YogaLogger } from 'graphql-yoga';
import { type DestinationStream, type LevelWithSilent, type Logger, pino } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export interface LoggerOptions {
  /** @default 'info' */
  level?: LevelWithSilent;
  /**
   * Where JSON lines go.
   * @default stderr // stdout is kept for what the CLI prints for scripts (the URL)
   */
  destination?: DestinationStream;
  /**
   * Human-readable lines (pino-pretty) instead of JSON; only without `destination`.
   * @default process.stderr.isTTY
   */
  pretty?: boolean;
}

export function createLogger({ level = 'info', destination, pretty: human }: LoggerOptions = {}): Logger {
  const options = { level, base: { name: 'sessiongraph' } };
  if (destination) return pino(options, destination);
  if (human ?? process.stderr.isTTY === true) {
    return pino(options, pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname,name' }));
  }
  return pino(options, pino.destination({ dest: 2, sync: true }));
}

const requestLogger = new AsyncLocalStorage<Logger>();

/** Runs `work` (and whatever it starts) as part of the request that `logger` is the child logger of. */
export function runWithLogger<T>(logger: Logger, work: () => T): T {
  return requestLogger.run(logger, work);
}

/** The current request's logger, or `fallback` outside any request. */
export function currentLogger(fallback: Logger): Logger {
  return requestLogger.getStore() ?? fallback;
}

/**
 * Yoga's logger interface over pino, through the current request's logger when there is one.
 * Errors keep their detail: a GraphQL error that wraps an unexpected one is logged with the
 * original error (its stack) and the field path.
 */
export function toYogaLogger(base: Logger): YogaLogger {
  const line =
    (level: 'debug' | 'info' | 'warn') =>
    (...args: unknown[]) => {
      const log = currentLogger(base);
      if (log.isLevelEnabled(level)) log[level](format(...args));
    };
  return {
    debug: line('debug'),
    info: line('info'),
    warn: line('warn'),
    error: (...args: unknown[]) => {
      const log = currentLogger(base);
      const [first, ...rest] = args;
      if (first instanceof GraphQLError) {
        log.error({ err: first.originalError ?? first, path: first.path?.join('.') }, first.message);
      } else if (first instanceof Error) {
        log.error({ err: first }, first.message);
      } else {
        log.error(format(first, ...rest));
      }
    },
  };
}
