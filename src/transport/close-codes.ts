/**
 * Every WebSocket close code the server sends, by name: graphql-ws's protocol codes (sent by the
 * library itself), ws's, and our own in the 4000-4999 application range, clear of graphql-ws's
 * (4400-4409, 4429, 4500, 4504 and its client-side 4004, 4005): one code, one cause, so a client can
 * tell "too many connections for this token" from graphql-ws's "too many initialisation requests".
 * The README lists them all (Live updates, close codes); a test holds the two lists together.
 */

import { CloseCode as GraphQLWsCloseCode } from 'graphql-ws';

export const CloseCode = {
  /** The server is shutting down (`dispose()`); reconnect and resume from the last cursor. */
  GoingAway: 1001,
  /** A frame that breaks RFC 6455 (ws): unmasked, a bad opcode, a control frame too long. */
  ProtocolError: 1002,
  /** Not valid UTF-8 in a text message (ws, RFC 6455), or in a binary one (ours): nothing of it runs. */
  InvalidFramePayloadData: 1007,
  /** A message larger than `wsMaxPayloadBytes` (ws): the socket cannot skip a frame it did not read. */
  MessageTooBig: 1009,
  /** The server could not handle a message (logged with its detail; the client sees only this). */
  InternalServerError: GraphQLWsCloseCode.InternalServerError,
  /** No `connection_init` within the wait (graphql-ws). */
  ConnectionInitialisationTimeout: GraphQLWsCloseCode.ConnectionInitialisationTimeout,
  /** A message that is not graphql-transport-ws (graphql-ws). */
  BadRequest: GraphQLWsCloseCode.BadRequest,
  /** An operation before `connection_ack` (graphql-ws). */
  Unauthorized: GraphQLWsCloseCode.Unauthorized,
  /** A second `connection_init` (graphql-ws). */
  TooManyInitialisationRequests: GraphQLWsCloseCode.TooManyInitialisationRequests,
  /** An operation id already running on this socket (graphql-ws). */
  SubscriberAlreadyExists: GraphQLWsCloseCode.SubscriberAlreadyExists,
  /** Not the graphql-transport-ws subprotocol (graphql-ws). */
  SubprotocolNotAcceptable: GraphQLWsCloseCode.SubprotocolNotAcceptable,
  /** Ours: no operation ran on the socket for `idleTimeoutMs`; a lazy client reconnects when it needs to. */
  IdleTimeout: 4_000,
  /**
   * No known token in `connection_init` (`{ "token": "<secret>" }`) while tokens are configured, or the
   * token was removed since: sent before any operation runs (graphql-ws's own code for a refused init).
   */
  Forbidden: GraphQLWsCloseCode.Forbidden,
  /** Ours: the token already holds `maxConnectionsPerToken` live connections; close one and retry. */
  TooManyConnections: 4_001,
  /**
   * Ours: the socket sent messages (or pings) faster than its budget (`wsMessageRate` per second,
   * bursts of `wsMessageBurst`); what it sent after the budget ran out was not handled. Reconnect
   * with a backoff and send less.
   */
  MessageRateExceeded: 4_002,
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
