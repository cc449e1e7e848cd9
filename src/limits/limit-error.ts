/**
 * The errors a request-level limit raises: plain GraphQL errors (the request is refused before
 * anything runs, so there is no typed result union to return) whose `extensions.code` is stable
 * and whose extensions carry the limit and, when it is known, the refused value.
 */

import { GraphQLError, type GraphQLErrorExtensions } from 'graphql';

/** The `extensions.code` of each request-level limit. */
export const LimitCode = {
  /** Selections nested deeper than `maxQueryDepth`. */
  QueryTooDeep: 'QUERY_TOO_DEEP',
  /** An operation whose estimated cost is over `maxQueryCost`. */
  QueryTooComplex: 'QUERY_TOO_COMPLEX',
  /** More aliased fields than `maxAliases`. */
  TooManyAliases: 'TOO_MANY_ALIASES',
  /** A document of more lexical tokens than `maxQueryTokens`. */
  TooManyTokens: 'TOO_MANY_TOKENS',
  /** More directives than `maxDirectives`. */
  TooManyDirectives: 'TOO_MANY_DIRECTIVES',
  /** Variables holding more values (containers included) than `maxVariableValues`. */
  TooManyVariableValues: 'TOO_MANY_VARIABLE_VALUES',
  /** An HTTP request body over `maxBodyBytes` (status 413). */
  BodyTooLarge: 'BODY_TOO_LARGE',
  /**
   * An HTTP request body, or a GET request's query string, that is not valid UTF-8 (status 400):
   * refused whole, rather than read with U+FFFD in place of the bad bytes and stored that way.
   */
  InvalidUtf8: 'INVALID_UTF8',
  /** `__schema` or `__type` asked of a server that runs with introspection off. */

  IntrospectionDisabled: 'INTROSPECTION_DISABLED',
} as const;

export type LimitCode = (typeof LimitCode)[keyof typeof LimitCode];

/**
 * @param limit the configured cap
 * @param actual the refused value, when the check knows it (a token count stops at limit + 1)
 * @param http extra `extensions.http` (yoga sets the response status from it and strips it)
 */
export function limitError(
  code: LimitCode,
  message: string,
  limit: number,
  actual?: number,
  http?: { status: number },
): GraphQLError {
  const extensions: GraphQLErrorExtensions = { code, limit };
  if (actual !== undefined) extensions.actual = actual;
  if (http) extensions.http = http;
  return new GraphQLError(message, { extensions });
}
