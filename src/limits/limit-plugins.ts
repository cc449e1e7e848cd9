/**
 * Every request-level limit as yoga plugins, for server.ts to register before the subscription
 * executor (whose onSubscribe ends the chain): a body type yoga reads (media-type.ts), HTTP body
 * size (body-limit.ts), document shape (query-limits.ts), a code on every malformed request
 * (request-errors.ts) and, in production, no introspection and no suggestions (production.ts).
 */

import type { Plugin } from 'graphql-yoga';
import { useRequestBodyLimit } from './body-limit.js';
import { useUnsupportedMediaType } from './media-type.js';
import { useNoIntrospection, useNoSuggestions } from './production.js';
import { type QueryLimits, queryLimitPlugins } from './query-limits.js';
import { useBadUserInputCode, useEarlyVariableCoercion, useRequestErrorCodes } from './request-errors.js';

export interface RequestLimits {
  query: QueryLimits;
  /** @default 4_194_304 // bytes per HTTP request body */
  maxBodyBytes: number;
  /**
   * Values (containers included) in one request's variables. server.ts derives it from the batch
   * cap: a full batch is 3 values per message (the object, role, content) and createdAt at most.
   * @default 4 * maxBatchMessages + 1_000
   */
  maxVariableValues: number;
  /** Introspection off, suggestions out of error messages. @default false */
  production: boolean;
}

/**
 * Holds a whole message at the default content cap (1 MiB) even with JSON escaping, and a full
 * batch of ordinary chat messages.
 */
export const DEFAULT_MAX_BODY_BYTES = 4_194_304;

export function limitPlugins(limits: RequestLimits): Plugin[] {
  return [
    // first: their result hooks must see the results that the plugins below end early
    ...(limits.production ? [useNoIntrospection(), ...useNoSuggestions()] : []),
    useRequestErrorCodes(),
    useBadUserInputCode(),
    useEarlyVariableCoercion(limits.maxVariableValues),
    useUnsupportedMediaType(),
    useRequestBodyLimit(limits.maxBodyBytes),
    ...queryLimitPlugins(limits.query),
  ];
}
