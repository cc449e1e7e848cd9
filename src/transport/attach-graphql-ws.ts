/**
 * graphql-ws (the graphql-transport-ws protocol) on the `/graphql` path of the HTTP server's own
 * port, running every operation through the same yoga instance as HTTP (`getEnveloped`: schema,
 * context, plugins, masking).
 *
 * The socket is the client's, not one operation's: a document that does not parse, fails
 * validation, or hits a limit fails that one operation with an error message, and the other
 * subscriptions on the socket go on. graphql-ws alone would close the whole socket with 4500 when
 * parse or validate throws.
 *
 * Every upgrade request, on any path, passes the request gate first (request-gate.ts: path, Host,
 * Origin); the token is checked at `connection_init`.
 *
 * Dead connections are terminated by the keep-alive, idle ones closed with IdleTimeout, silent
 * ones by the connection_init wait: one sweep for all sockets (socket-reaper.ts).
 *
 * Each socket has a budget of inbound messages and pings (frame-budget.ts): one that sends faster
 * is closed with MessageRateExceeded, and what it sent after is not handled, so one socket cannot
 * hold the event loop. Text messages that are not UTF-8 are closed by ws (1007); binary ones, which
 * ws does not check, are held to the same rule here rather than decoded with U+FFFD in place.
 *
 * The glue between `ws` and graphql-ws's protocol (`makeServer`) is ours rather than
 * `graphql-ws/use/ws`: that one writes socket errors (a client's frame over the payload cap, bad
 * UTF-8, a protocol violation) to console.error with a stack, so any client could fill the
 * server's stderr with unstructured lines. Here they are one structured log line each.
 */

import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type ExecutionArgs, type execute, GraphQLError, type subscribe } from 'graphql';
import {
  type FormattedExecutionResult,
  handleProtocols,
  makeServer,
  type Context as WsContext,
} from 'graphql-ws';
import type { YogaServerInstance } from 'graphql-yoga';
import { type WebSocket, WebSocketServer } from 'ws';
import type { AccessControl } from '../auth/access-control.js';
import type { Principal } from '../auth/principal.js';
import { ErrorCode, isAppError, TooLargeError } from '../errors.js';
import { type Logger, runWithLogger } from '../logger.js';
import type { Context } from '../schema/context.js';
import { appErrorExtensions } from '../schema/use-app-errors.js';
import { CloseCode } from './close-codes.js';
import { createFrameBudget } from './frame-budget.js';
import { type RequestGate, writeUpgradeRefusal } from './request-gate.js';
import { REQUEST_ID_HEADER, requestIdOf } from './request-id.js';
import { startSocketReaper } from './socket-reaper.js';

export interface GraphQLWsOptions {
  /**
   * Largest message a client may send; a larger one closes its socket (MessageTooBig): a
   * WebSocket cannot skip a message it did not read.
   * @default 4_194_304 // bytes
   */
  maxPayloadBytes: number;
  /** A ping per interval; a socket without a pong within an interval is terminated. @default 12_000 // ms */
  keepAliveMs: number;
  /** How long a new socket may take to send `connection_init` (to the next second). @default 3_000 // ms */
  connectionInitWaitTimeoutMs: number;
  /** Operations running at once on one socket; one more fails with TOO_LARGE. @default 100 */
  maxOperationsPerSocket: number;
  /** A socket with no operation for this long (to the next second) is closed. @default 300_000 // ms */
  idleTimeoutMs: number;
  /**
   * Messages (and pings) one socket may send per second, sustained; faster closes it with
   * MessageRateExceeded. @default 100 // messages per second
   */
  messageRatePerSecond: number;
  /**
   * Messages one socket may send at once above the rate: room for a client that subscribes to its
   * `maxOperationsPerSocket` operations on reconnect. @default 300 // messages
   */
  messageBurst: number;
}

export const DEFAULT_GRAPHQL_WS_OPTIONS: GraphQLWsOptions = Object.freeze({
  maxPayloadBytes: 4_194_304,
  keepAliveMs: 12_000,
  connectionInitWaitTimeoutMs: 3_000,
  maxOperationsPerSocket: 100,
  idleTimeoutMs: 300_000,
  messageRatePerSecond: 100,
  messageBurst: 300,
});

/** What graphql-ws hands over for a socket, and what yoga's context gets from it. */
export interface WsServerContext {
  /** The client's WebSocket: live feeds read its bufferedAmount. */
  connection?: { readonly bufferedAmount: number };
  /** The operation's logger: a child carrying its request id and its connection's id. */
  logger?: Logger;
  /** Who opened the socket (its `connection_init` token); absent over HTTP. */
  principal?: Principal;
}

/** Who may open a socket: the token check at `connection_init` (the gate checks the upgrade). */
export type WsAccess = Pick<AccessControl, 'admitSocket' | 'registry'>;

export interface GraphQLWsServer {
  /** Open WebSocket connections (metrics read it at each scrape). */
  readonly connections: number;
  /** Closes every socket with GoingAway (subscriptions end), then stops accepting upgrades. */
  dispose(): Promise<void>;
}

type Yoga = Pick<YogaServerInstance<WsServerContext, Context>, 'getEnveloped' | 'graphqlEndpoint'>;
type Enveloped = ExecutionArgs & { execute: typeof execute; subscribe: typeof subscribe };
type Extra = { socket: WebSocket; request: import('node:http').IncomingMessage };

export function attachGraphQLWs(deps: {
  httpServer: Server;
  yoga: Yoga;
  logger: Logger;
  options?: Partial<GraphQLWsOptions> | undefined;
  /** @default every socket admitted, as the open principal */
  access?: WsAccess | undefined;
  /**
   * Checks every upgrade request, on any path, before ws sees it (request-gate.ts): the path, Host
   * and Origin. @default none: ws itself takes upgrades on the endpoint path only
   */
  gate?: Pick<RequestGate, 'checkUpgrade'> | undefined;
}): GraphQLWsServer {
  const { yoga, logger } = deps;
  const options: GraphQLWsOptions = { ...DEFAULT_GRAPHQL_WS_OPTIONS, ...deps.options };
  const wss = new WebSocketServer({
    // the upgrade listener below hands over what the gate let through
    noServer: true,
    path: yoga.graphqlEndpoint,
    maxPayload: options.maxPayloadBytes,
    // compression costs CPU and memory per socket; events are small
    perMessageDeflate: false,
  });
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refused = deps.gate?.checkUpgrade(request);
    if (refused) return writeUpgradeRefusal(request, socket, refused);
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
  };
  deps.httpServer.on('upgrade', onUpgrade);
  // what ws did when it owned the server: a server error after listen (one at listen fails
  // startServer, which reports it) is logged, where an 'error' without a listener would throw
  const onServerError = (err: Error) => {
    if (deps.httpServer.listening) logger.error({ err }, 'the HTTP server failed');
  };
  deps.httpServer.on('error', onServerError);
  const principals = new WeakMap<WebSocket, Principal>();
  const contexts = new WeakMap<WebSocket, WsContext<Record<string, unknown>, Extra>>();
  /**
   * Each socket's connection id: the upgrade request's sane `x-request-id`, or new. Loggers are made
   * from it when needed, not kept per socket: a pino child weighs over half a KiB, and a server
   * holds thousands of idle live-tail sockets.
   */
  const socketIds = new WeakMap<WebSocket, string>();
  const loggerOfSocket = (socket: WebSocket) => {
    const connectionId = socketIds.get(socket);
    return connectionId === undefined ? logger : logger.child({ connectionId });
  };
  const connectionIds = new WeakMap<IncomingMessage, string>();
  // the id is decided as the upgrade is answered, so that the 101 response can echo it
  wss.on('headers', (headers, request) => {
    const connectionId = requestIdOf(request.headers[REQUEST_ID_HEADER]);
    connectionIds.set(request, connectionId);
    headers.push(`${REQUEST_ID_HEADER}: ${connectionId}`);
  });
  const loggerOf = (args: unknown) => (args as { contextValue: Context }).contextValue.logger;

  const server = makeServer<Record<string, unknown>, Extra>({
    execute: (args) => runWithLogger(loggerOf(args), () => (args as Enveloped).execute(args)),
    subscribe: (args) => runWithLogger(loggerOf(args), () => (args as Enveloped).subscribe(args)),
    // the socket reaper below keeps time for all sockets at once
    connectionInitWaitTimeout: 0,
    onConnect: (ctx) => {
      contexts.set(ctx.extra.socket, ctx);
      const { request } = ctx.extra;
      const connectionId = connectionIds.get(request) ?? requestIdOf(request.headers[REQUEST_ID_HEADER]);
      socketIds.set(ctx.extra.socket, connectionId);
      // graphql-ws would keep the upgrade request (headers and all) as long as the socket lives;
      // what an operation needs of it must be read here
      Reflect.deleteProperty(ctx.extra, 'request');
      if (!deps.access) return true;
      const { socket } = ctx.extra;
      const admitted = deps.access.admitSocket(ctx.connectionParams);
      if ('refused' in admitted) {
        // before graphql-ws closes with its own Forbidden: the first close code is the one sent
        socket.close(CloseCode[admitted.refused], admitted.reason);
        return false;
      }
      principals.set(socket, admitted.principal);
      socket.once('close', admitted.release);
      return true;
    },
    onSubscribe: async (ctx, _id, payload) => {
      const running = Object.keys(ctx.subscriptions).length;
      if (running > options.maxOperationsPerSocket) {
        const limit = options.maxOperationsPerSocket;
        const error = new TooLargeError(
          `at most ${limit} operations may run at once on one connection; this would be ${running}`,
          'operations',
          limit,
          running,
          'items',
        );
        return [new GraphQLError(error.message, { extensions: appErrorExtensions(error) })];
      }
      const { socket } = ctx.extra;
      const principal = principals.get(socket);
      if (principal && deps.access && !deps.access.registry.isCurrent(principal)) {
        // the token was removed since the socket connected
        socket.close(CloseCode.Forbidden, 'Forbidden');
        return [
          new GraphQLError('The token of this connection is no longer valid.', {
            extensions: { code: ErrorCode.Unauthenticated },
          }),
        ];
      }
      const log = logger.child({ connectionId: socketIds.get(socket), reqId: randomUUID() });
      return runWithLogger(log, async () => {
        try {
          // the socket, the logger and the principal only: every key here is copied into each operation's context
          const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
            connection: socket,
            logger: log,
            ...(principal && { principal }),
          });
          const document = parse(payload.query);
          const errors = validate(schema, document);
          if (errors.length > 0) return [...errors];
          const args: Enveloped = {
            schema,
            document,
            operationName: payload.operationName ?? null,
            variableValues: payload.variables ?? null,
            contextValue: await contextFactory(),
            execute,
            subscribe,
          };
          return args;
        } catch (err) {
          return [forClient(err, () => log)];
        }
      });
    },
    // the result as it is: graphql-ws would copy it for every subscriber, and a live result is
    // shared by all of them (use-shared-subscription-execution.ts); GraphQLError serialises itself
    onNext: (_ctx, _id, _payload, _args, result) => result as FormattedExecutionResult,
    onError: (ctx, _id, _payload, errors) =>
      errors.map((error) => forClient(error, () => loggerOfSocket(ctx.extra.socket)).toJSON()),
  });
  wss.options.handleProtocols = handleProtocols;
  wss.on('connection', (socket, request) => {
    // ws has already closed the socket with the matching code (1009 for a frame over the cap, 1007
    // for bad UTF-8, 1002 for a protocol error): the client's doing, told in one line
    socket.on('error', (err: Error & { code?: string }) => {
      loggerOfSocket(socket).warn(
        { reason: err.message, code: err.code },
        'closed a WebSocket on a client error',
      );
      if (socket.readyState === socket.OPEN)
        socket.close(CloseCode.InternalServerError, 'Internal server error');
    });
    const budget = createFrameBudget(options.messageRatePerSecond, options.messageBurst);
    let overBudget = false;
    /** Spends one message of the budget; false (and the socket closing) when it is spent. */
    const admit = () => {
      // a closing socket's queued messages are dropped unread: a flood ends at the budget
      if (overBudget || socket.readyState !== socket.OPEN) return false;
      if (budget.take()) return true;
      overBudget = true;
      loggerOfSocket(socket).warn(
        { rate: options.messageRatePerSecond, burst: options.messageBurst },
        'closed a WebSocket that sent messages faster than its budget',
      );
      // after the answers to the messages within the budget (each a turn of promises) went out
      setImmediate(() => socket.close(CloseCode.MessageRateExceeded, 'Too many messages'));
      return false;
    };
    socket.on('ping', admit);
    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (data) =>
          new Promise<void>((resolve, reject) => {
            if (socket.readyState !== socket.OPEN) return resolve();
            socket.send(data, (err) => (err ? reject(err) : resolve()));
          }),
        close: (code, reason) => socket.close(code, reason),
        onMessage: (handle) =>
          socket.on('message', async (data, isBinary) => {
            if (!admit()) return;
            // ws has checked a text message's UTF-8 already (1007); a binary one is held to the same
            if (isBinary && !isUtf8(data as Buffer)) {
              socket.close(CloseCode.InvalidFramePayloadData, 'Invalid UTF-8');
              return;
            }
            try {
              await handle(String(data));
            } catch (err) {
              loggerOfSocket(socket).error({ err }, 'a WebSocket message could not be handled');
              socket.close(CloseCode.InternalServerError, 'Internal server error');
            }
          }),
      },
      { socket, request },
    );
    socket.once('close', (code, reason) => closed(code, String(reason)));
  });
  const reaper = startSocketReaper(wss, {
    ...options,
    acknowledged: (socket) => contexts.get(socket)?.acknowledged === true,
    operations: (socket) => {
      const ctx = contexts.get(socket);
      return ctx ? Object.keys(ctx.subscriptions).length : 0;
    },
  });

  let disposing: Promise<void> | undefined;
  return {
    get connections() {
      return wss.clients.size;
    },
    dispose() {
      disposing ??= (async () => {
        reaper.close();
        deps.httpServer.off('upgrade', onUpgrade);
        deps.httpServer.off('error', onServerError);
        for (const socket of wss.clients) socket.close(CloseCode.GoingAway, 'Going away');
        wss.removeAllListeners();
        await new Promise<void>((resolve, reject) => wss.close((err) => (err ? reject(err) : resolve())));
      })();
      return disposing;
    },
  };
}

/**
 * What a client may see of an error that ends one operation: GraphQL's own (syntax, validation)
 * and our typed errors as they are; anything else masked and logged (`logger` is asked for only then).
 */
function forClient(err: unknown, logger: () => Logger): GraphQLError {
  const original = err instanceof GraphQLError ? err.originalError : err;
  if (err instanceof GraphQLError && (original === undefined || original instanceof GraphQLError)) return err;
  if (isAppError(original))
    return new GraphQLError(original.message, { extensions: appErrorExtensions(original) });
  logger().error({ err: original }, 'a WebSocket operation failed');
  return new GraphQLError('Unexpected error.', { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
}
