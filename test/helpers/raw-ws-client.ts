/**
 * A graphql-transport-ws client by hand, for tests that send what a well-behaved client never
 * would (floods, binary frames, bad UTF-8, a second connection_init) and must see every frame and
 * the close code the server chose.
 */

import WebSocket from 'ws';
import { wsUrlOf } from './live-client.js';
import type { Json } from './server.js';

export class RawWsClient {
  readonly frames: Json[] = [];
  readonly socket: WebSocket;
  /** The close the server sent (code and reason). */
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly waiters = new Set<() => void>();

  constructor(httpUrl: string, options: WebSocket.ClientOptions = {}) {
    this.socket = new WebSocket(wsUrlOf(httpUrl), 'graphql-transport-ws', options);
    this.socket.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)));
      for (const w of [...this.waiters]) w();
    });
    // a server that closes mid-send may reset the connection: the close event still follows
    this.socket.on('error', () => {});
    this.closed = new Promise((resolve) => {
      this.socket.on('close', (code, reason) => {
        resolve({ code, reason: String(reason) });
        for (const w of [...this.waiters]) w();
      });
    });
  }

  async open(): Promise<void> {
    if (this.socket.readyState === WebSocket.OPEN) return;
    await new Promise((resolve, reject) => {
      this.socket.once('open', resolve);
      this.socket.once('error', reject);
    });
  }

  /** Opens the socket and completes the graphql-ws handshake (`payload`: the connection_init payload). */
  async init(payload?: Record<string, unknown>): Promise<void> {
    await this.open();
    this.send({ type: 'connection_init', ...(payload && { payload }) });
    await this.until((f) => f.some((x) => x.type === 'connection_ack'));
  }

  send(message: Record<string, unknown>): void {
    this.socket.send(JSON.stringify(message));
  }

  subscribe(id: string, query: string, variables: Record<string, unknown> = {}): void {
    this.send({ id, type: 'subscribe', payload: { query, variables } });
  }

  /** The frames of one operation id. */
  of(id: string): Json[] {
    return this.frames.filter((f) => f.id === id);
  }

  /** The `next` payloads of one operation. */
  results(id: string): Json[] {
    return this.frames.filter((f) => f.id === id && f.type === 'next').map((f) => f.payload);
  }

  until(condition: (frames: Json[]) => boolean, timeoutMs = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!condition(this.frames)) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(`timed out after ${this.frames.length} frames: ${JSON.stringify(this.frames.slice(-3))}`),
        );
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  close(): void {
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.terminate();
  }
}
