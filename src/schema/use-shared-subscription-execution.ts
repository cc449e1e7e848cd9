/**
 * Subscriptions, lean and shared: executes each live event once per distinct (document,
 * operation, variables, scope) instead of once per subscriber. The feeds hand every caught-up
 * subscriber of a session the same event object (src/events/session-topic.ts); the first
 * subscriber to map an event executes the selection on it and formats the result, and the others
 * with the same key take that result. With 1,000 dashboards on one session, an append runs the
 * resolvers once, not 1,000 times.
 *
 * It takes over subscribe entirely: graphql-js creates the source stream (the field's own
 * `subscribe`), and each event runs `execute` on a fresh copy of the context, so dataloader caches
 * never outlive one event. It ends the plugins' onSubscribe chain: the result hooks of the plugins
 * after it (yoga's masking among them) would wrap every subscriber's stream in several more async
 * iterators, which cost about 3 KiB and a few promise hops per subscriber and event. So it masks
 * here, the same way: our typed errors reach the client with their code (use-app-errors.ts),
 * GraphQL's own errors as they are, anything else as `Unexpected error.`, logged. A source stream
 * that fails (FEED_OVERFLOW, shutdown, storage errors) ends with one such error result, the same
 * over graphql-ws and SSE. Register it after every plugin whose onSubscribe must still run.
 */

import {
  createSourceEventStream,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  execute,
  GraphQLError,
  getOperationAST,
  Kind,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Logger } from 'pino';
import { withBadUserInputCode } from '../limits/request-errors.js';
import { translateAppError } from './use-app-errors.js';

export interface SharedSubscriptionExecutionOptions {
  logger: Logger;
  /**
   * What besides the document and the variables decides a result. Subscribers whose contexts give
   * the same scope share executions; per-caller permissions (tokens, key prefixes) must show here.
   * @default () => '' // every subscriber may see the same data
   */
  scopeOf?: (context: unknown) => string;
  /** Told when each subscription opens, delivers and ends (metrics). @default none */
  observer?: SubscriptionObserver | undefined;
}

/** Watches subscriptions from the outside; called synchronously, so it must be cheap and never throw. */
export interface SubscriptionObserver {
  /** A subscription's source stream opened; `field` is its root field. */
  opened(field: string): SubscriptionProbe;
}

/** One subscription, as its observer sees it. */
export interface SubscriptionProbe {
  /** One result was handed to the subscriber. */
  delivered(): void;
  /** It ended, once: `complete`, or the code of the error that ended it (FEED_OVERFLOW, UNAVAILABLE...). */
  closed(reason: string): void;
}

const UNOBSERVED: SubscriptionProbe = Object.freeze({ delivered() {}, closed() {} });

type Result = ExecutionResult | Promise<ExecutionResult>;

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

export function useSharedSubscriptionExecution(options: SharedSubscriptionExecutionOptions): Plugin {
  const { logger } = options;
  const scopeOf = options.scopeOf ?? (() => '');
  const documentIds = new WeakMap<DocumentNode, number>();
  let nextDocumentId = 0;
  // keyed by the event object: a result lives exactly as long as some subscriber can still need it
  const results = new WeakMap<object, Map<string, Result>>();

  const keyOf = (args: ExecutionArgs): string => {
    let id = documentIds.get(args.document);
    if (id === undefined) {
      id = nextDocumentId++;
      documentIds.set(args.document, id);
    }
    const variables = stableJson(args.variableValues ?? {});
    return `${id}\u0000${args.operationName ?? ''}\u0000${variables}\u0000${scopeOf(args.contextValue)}`;
  };

  // errors are logged by the subscriber's own logger (its request id) when its context has one
  const loggerOf = (args: ExecutionArgs): Logger =>
    (args.contextValue as { logger?: Logger } | undefined)?.logger ?? logger;
  const format = (result: ExecutionResult, log: Logger): ExecutionResult =>
    result.errors ? { ...result, errors: result.errors.map((error) => forClient(error, log)) } : result;
  // graphql-js builds results from null-prototype objects, which JSON.stringify walks slowly;
  // a shared result is serialised once per subscriber, so it pays to copy it into plain ones
  const plain = (result: ExecutionResult): ExecutionResult =>
    result.data
      ? { ...result, data: JSON.parse(JSON.stringify(result.data)) as ExecutionResult['data'] }
      : result;

  const run = (args: ExecutionArgs, event: unknown): Result => {
    const result = execute({ ...args, rootValue: event, contextValue: { ...(args.contextValue as object) } });
    const log = loggerOf(args);
    return result instanceof Promise ? result.then((r) => format(r, log)) : format(result, log);
  };

  const shared: SharedExecution = {
    executeOnce(args, key, event) {
      if (event === null || typeof event !== 'object') return run(args, event);
      let byKey = results.get(event);
      if (!byKey) {
        byKey = new Map();
        results.set(event, byKey);
      }
      let result = byKey.get(key);
      if (result === undefined) {
        const executed = run(args, event);
        result = executed instanceof Promise ? executed.then(plain) : plain(executed);
        byKey.set(key, result);
      }
      return result;
    },
    failed: (args, error) => ({ errors: [forClient(asGraphQLError(error), loggerOf(args))] }),
  };

  const subscribe = async (
    args: ExecutionArgs,
  ): Promise<ExecutionResult | AsyncIterableIterator<ExecutionResult>> => {
    const source = await createSourceEventStream(args);
    // variables that do not fit: BAD_USER_INPUT, as on queries (request-errors.ts)
    if (!isAsyncIterable(source)) return format(withBadUserInputCode(source), loggerOf(args));
    const probe = options.observer?.opened(rootFieldOf(args)) ?? UNOBSERVED;
    const results = new SharedResults(source[Symbol.asyncIterator](), shared, args, keyOf(args), probe);
    (args as { signal?: AbortSignal }).signal?.addEventListener('abort', () => void results.return(), {
      once: true,
    });
    return results;
  };

  return {
    onSubscribe({ args, setResultAndStopExecution }) {
      // a promise is fine here: envelop awaits whatever the subscribe step yields
      setResultAndStopExecution(subscribe(args) as never);
    },
  };
}

interface SharedExecution {
  executeOnce(args: ExecutionArgs, key: string, event: unknown): Result;
  failed(args: ExecutionArgs, error: unknown): ExecutionResult;
}

/**
 * One subscriber's results. Unlike an async generator, return() reaches the source at once, also
 * while a read is pending (a client that leaves must release its feed right away); and a read
 * that finds its result already executed costs no extra promise turn.
 */
class SharedResults implements AsyncIterableIterator<ExecutionResult> {
  private finished = false;

  constructor(
    private readonly events: AsyncIterator<unknown>,
    private readonly shared: SharedExecution,
    private readonly args: ExecutionArgs,
    private readonly key: string,
    private readonly probe: SubscriptionProbe,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<ExecutionResult>> {
    if (this.finished) return Promise.resolve(DONE);
    return this.events.next().then(this.onStep, this.onError);
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.finish('complete');
    await this.events.return?.();
    return DONE;
  }

  async throw(error?: unknown): Promise<IteratorResult<ExecutionResult>> {
    await this.return();
    throw error;
  }

  private readonly onStep = (
    step: IteratorResult<unknown>,
  ): IteratorResult<ExecutionResult> | Promise<IteratorResult<ExecutionResult>> => {
    if (step.done || this.finished) {
      this.finish('complete');
      return DONE;
    }
    this.probe.delivered();
    const result = this.shared.executeOnce(this.args, this.key, step.value);
    return result instanceof Promise ? result.then(asStep) : { value: result, done: false };
  };

  private readonly onError = (error: unknown): IteratorResult<ExecutionResult> => {
    const value = this.shared.failed(this.args, error);
    this.finish(String(value.errors?.[0]?.extensions?.code ?? 'INTERNAL_SERVER_ERROR'));
    return { value, done: false };
  };

  private finish(reason: string): void {
    if (this.finished) return;
    this.finished = true;
    this.probe.closed(reason);
  }
}

const asStep = (value: ExecutionResult): IteratorResult<ExecutionResult> => ({ value, done: false });

/** The subscription's root field (a subscription selects exactly one). */
function rootFieldOf(args: ExecutionArgs): string {
  const selection = getOperationAST(args.document, args.operationName)?.selectionSet.selections[0];
  return selection?.kind === Kind.FIELD ? selection.name.value : 'unknown';
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof (value as AsyncIterable<unknown>)?.[Symbol.asyncIterator] === 'function';
}

function asGraphQLError(error: unknown): GraphQLError {
  if (error instanceof GraphQLError) return error;
  const original = error instanceof Error ? error : new Error(String(error));
  return new GraphQLError(original.message, { originalError: original });
}

/** Yoga's masking, for the results that bypass it: see the file comment. */
function forClient(error: GraphQLError, logger: Logger): GraphQLError {
  const translated = translateAppError(error);
  if (translated !== error) return translated;
  const original = error.originalError;
  if (!original || original instanceof GraphQLError) return error;
  logger.error({ err: original, path: error.path?.join('.') }, error.message);
  return new GraphQLError('Unexpected error.', {
    nodes: error.nodes ?? null,
    source: error.source ?? null,
    positions: error.positions ?? null,
    path: error.path ?? null,
    extensions: { code: 'INTERNAL_SERVER_ERROR' },
  });
}

/** JSON with object keys sorted, so that equal variables give equal keys. */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}
