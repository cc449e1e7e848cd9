/**
 * Housekeeping for every WebSocket of the server from one timer: pings and terminates dead
 * sockets (no pong within a keep-alive interval of a ping), closes sockets that never sent
 * `connection_init` in time, and sockets that ran no operation for the idle timeout.
 *
 * graphql-ws can do the first two itself, with two timers and closures per socket; with thousands
 * of subscribers one sweep over all sockets costs less memory (about 0.5 KiB per socket) and the
 * same CPU.
 */

import type { WebSocket, WebSocketServer } from 'ws';
import { CloseCode } from './close-codes.js';

export interface SocketReaperOptions {
  /** A ping per interval; no pong within an interval of it terminates the socket. 0 disables. */
  keepAliveMs: number;
  /** How long a socket may take to be acknowledged (`connection_init`). */
  connectionInitWaitTimeoutMs: number;
  /** How long an acknowledged socket may run no operation. */
  idleTimeoutMs: number;
  /** Whether graphql-ws acknowledged the socket. */
  acknowledged(socket: WebSocket): boolean;
  /** Operations running on the socket. */
  operations(socket: WebSocket): number;
}

export interface SocketReaper {
  close(): void;
}

/** How often the sweep runs: the resolution of every timeout above. @default 1_000 // ms */
const SWEEP_MS = 1_000;

export function startSocketReaper(wss: WebSocketServer, options: SocketReaperOptions): SocketReaper {
  const openedAt = new WeakMap<WebSocket, number>();
  /** When a socket was pinged, while its pong is awaited. */
  const pingedAt = new WeakMap<WebSocket, number>();
  const idleSince = new WeakMap<WebSocket, number>();
  // `this` is the socket: one listener function for all of them
  function onPong(this: WebSocket) {
    pingedAt.delete(this);
  }
  const onConnection = (socket: WebSocket) => {
    openedAt.set(socket, Date.now());
    socket.on('pong', onPong);
  };
  wss.on('connection', onConnection);

  let lastPing = Date.now();
  const sweep = () => {
    const now = Date.now();
    const { keepAliveMs } = options;
    const pingDue = keepAliveMs > 0 && now - lastPing >= keepAliveMs;
    if (pingDue) lastPing = now;
    for (const socket of wss.clients) {
      if (socket.readyState !== socket.OPEN) continue;
      const pinged = pingedAt.get(socket);
      if (pinged !== undefined && now - pinged >= keepAliveMs) {
        socket.terminate();
        continue;
      }
      if (pingDue && pinged === undefined) {
        pingedAt.set(socket, now);
        socket.ping();
      }
      if (!options.acknowledged(socket)) {
        if (now - (openedAt.get(socket) ?? now) >= options.connectionInitWaitTimeoutMs) {
          socket.close(CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
        }
        continue;
      }
      if (options.operations(socket) > 0) {
        idleSince.delete(socket);
        continue;
      }
      const since = idleSince.get(socket);
      if (since === undefined) idleSince.set(socket, now);
      else if (now - since >= options.idleTimeoutMs) socket.close(CloseCode.IdleTimeout, 'Idle timeout');
    }
  };
  const timer = setInterval(sweep, SWEEP_MS).unref();

  return {
    close() {
      clearInterval(timer);
      wss.off('connection', onConnection);
    },
  };
}
