/**
 * Our expected errors, as GraphQL errors, for fields that have no typed result union (queries,
 * and input checks that run before a mutation resolves). An AppError raised anywhere in execution
 * becomes a plain GraphQLError whose `extensions.code` is its ErrorCode and whose extensions carry
 * its details, so yoga's masking leaves it alone; everything else stays masked as
 * `Unexpected error.` and is logged.
 */

import { PothosValidationError } from '@pothos/core';
import { GraphQLError, type GraphQLErrorExtensions } from 'graphql';
import { usePayloadFormatter } from 'graphql-yoga';
import {
  type AppError,
  ConflictError,
  ErrorCode,
  FeedOverflowError,
  InvalidInputError,
  isAppError,
  KeyCollisionError,
  NotFoundError,
  TooLargeError,
} from '../errors.js';

/** `extensions` of the GraphQL error that reports `error`. */
export function appErrorExtensions(error: AppError): GraphQLErrorExtensions {
  const extensions: GraphQLErrorExtensions = { code: error.code };
  if (error instanceof InvalidInputError && error.field !== undefined) extensions.field = error.field;
  if (error instanceof NotFoundError && error.sessionKey !== undefined)
    extensions.sessionKey = error.sessionKey;
  if (error instanceof ConflictError) {
    // the same "0 means empty" convention as the ConflictError type
    if (error.expectedLastSeq !== undefined) extensions.expectedLastSeq = error.expectedLastSeq ?? 0;
    if (error.actualLastSeq !== undefined) extensions.actualLastSeq = error.actualLastSeq ?? 0;
  }
  if (error instanceof KeyCollisionError) {
    extensions.sessionKey = error.sessionKey;
    if (error.existingKey !== null) extensions.existingKey = error.existingKey;
  }
  if (error instanceof TooLargeError) {
    Object.assign(extensions, {
      field: error.field,
      limit: error.limit,
      actual: error.actual,
      unit: error.unit,
    });
  }
  if (error instanceof FeedOverflowError) Object.assign(extensions, { limit: error.limit, unit: error.unit });
  return extensions;
}

/** What the client is told about a failure that is its own input's fault, or undefined. */
function expectedExtensions(error: GraphQLError): GraphQLErrorExtensions | undefined {
  const original = error.originalError;
  if (isAppError(original)) return appErrorExtensions(original);
  // Pothos' own input checks, e.g. a global id that does not decode
  if (original instanceof PothosValidationError) return { code: ErrorCode.Invalid };
  return undefined;
}

/** The error as the client sees it: our typed errors with their code and details, others unchanged. */
export function translateAppError(error: GraphQLError): GraphQLError {
  const extensions = expectedExtensions(error);
  if (!extensions) return error;
  return new GraphQLError(error.message, {
    nodes: error.nodes ?? null,
    source: error.source ?? null,
    positions: error.positions ?? null,
    path: error.path ?? null,
    extensions: { ...error.extensions, ...extensions },
  });
}

/**
 * Runs before yoga's masking, which leaves errors without an originalError alone. Subscription
 * results are formatted the same way by use-shared-subscription-execution.ts.
 */
export function useAppErrors() {
  return usePayloadFormatter((result) => {
    if (!result.errors?.some((e) => expectedExtensions(e))) return false;
    return { ...result, errors: result.errors.map(translateAppError) };
  });
}
