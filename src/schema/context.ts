import { clearAllDataLoaders } from '@pothos/plugin-dataloader';
import type { Logger } from 'pino';
import type { Principal } from '../auth/principal.js';
import type { SessionBackend, StoreLimits } from '../backends/backend.js';
import type { Feed, FeedConnection } from '../events/feed.js';

/**
 * What every resolver receives. Built once per request (per operation on a WebSocket), so the
 * dataloaders that Pothos keeps on it never outlive a request; each event of a subscription runs on
 * a fresh copy (use-shared-subscription-execution.ts), so a long subscription never reads stale.
 */
export interface Context {
  /** The storage contract: resolvers call nothing else to read or write sessions. */
  backend: SessionBackend;
  /** The limits the backend enforces, surfaced to clients through `backend.limits`. */
  limits: StoreLimits;
  logger: Logger;
  /** The live feeds the subscriptions read. */
  feed: Feed;
  /**
   * Who is calling (src/auth/principal.ts). `backend` and `feed` are already narrowed to what this
   * principal may see and write; resolvers need not check it themselves.
   */
  principal: Principal;
  /** The client's WebSocket, which tells what it holds unsent; absent over HTTP. */
  connection?: FeedConnection | undefined;
}

/**
 * Awaits a write, then drops the request's dataloader caches: the mutation's payload (and any later
 * mutation in the same document, since they run one after another) reads what the write left.
 */
export async function afterWrite<T>(ctx: Context, write: Promise<T>): Promise<T> {
  const result = await write;
  clearAllDataLoaders(ctx);
  return result;
}
