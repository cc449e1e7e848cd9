/**
 * Every refusal of a malformed request carries a stable `extensions.code`, on every transport:
 *
 * - a body or query string that does not parse: yoga's GET parser lets `JSON.parse` throw on
 *   `variables=` or `extensions=` text, which became a 500 `Unexpected error.`; here it is a 400
 *   BAD_REQUEST. yoga's JSON body parser attaches the JSON error as `extensions.originalError`;
 *   the message says enough, and no internal error object reaches a client.
 * - a document that does not parse: GRAPHQL_PARSE_FAILED (yoga adds it over HTTP only).
 * - variables that do not fit their types: BAD_USER_INPUT (graphql-js gives them no code), at
 *   most MAX_REQUEST_ERRORS of them, each message at most MAX_ERROR_MESSAGE_CHARS long.
 * - variables of more values than the request may hold: TOO_MANY_VARIABLE_VALUES, before any
 *   coercion (whose errors quote the value they refuse).
 */

import { type ExecutionResult, GraphQLError, getOperationAST, getVariableValues } from 'graphql';
import { type Plugin, usePayloadFormatter } from 'graphql-yoga';
import { LimitCode, limitError } from './limit-error.js';

function badRequest(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'BAD_REQUEST', http: { status: 400 } } });
}

/** The parser's refusal without `originalError`; anything not a GraphQLError as BAD_REQUEST. */
function forClient(error: unknown): GraphQLError {
  if (!(error instanceof GraphQLError)) {
    return badRequest('the request is malformed: its variables or extensions are not valid JSON');
  }
  if (error.extensions.originalError === undefined) return error;
  const { originalError: _dropped, ...extensions } = error.extensions;
  return new GraphQLError(error.message, { extensions });
}

export function useRequestErrorCodes(): Plugin {
  return {
    onRequestParse({ requestParser, setRequestParser }) {
      if (!requestParser) return;
      const parse = requestParser;
      setRequestParser(async (request) => {
        try {
          return await parse(request);
        } catch (error) {
          throw forClient(error);
        }
      });
    },
    onParse() {
      return ({ result }) => {
        if (result instanceof GraphQLError && result.extensions.code === undefined) {
          // yoga adds the same code over HTTP only; graphql-ws hands the error on as it is
          (result.extensions as Record<string, unknown>).code = 'GRAPHQL_PARSE_FAILED';
        }
      };
    },
  };
}

/**
 * Variable errors reported per request. graphql-jit reports every one, so that a 1.6 MB list of
 * 100,000 bad items made a 17 MB response; past the cap (and graphql-js' own "Too many errors"
 * notice after it), one error counts the rest.
 * @default 50
 */
export const MAX_REQUEST_ERRORS = 50;

function capped(errors: readonly GraphQLError[]): readonly GraphQLError[] {
  if (errors.length <= MAX_REQUEST_ERRORS + 1) return errors;
  const more = errors.length - MAX_REQUEST_ERRORS;
  return [
    ...errors.slice(0, MAX_REQUEST_ERRORS),
    new GraphQLError(`${more} more errors like these were left out`, {
      extensions: { code: 'BAD_USER_INPUT' },
    }),
  ];
}

/** An error about the request as a whole (no path), with no code; results may hold plain objects. */
function isUncodedRequestError(error: GraphQLError): boolean {
  return error instanceof GraphQLError && error.extensions?.code === undefined && error.path === undefined;
}

/**
 * Variable coercion errors, BAD_USER_INPUT: a result without data whose errors have no path and
 * no code. The result itself when there are none. Subscriptions call it directly
 * (use-shared-subscription-execution.ts formats its own results).
 */
/**
 * graphql-js quotes the refused value in full in each variable error: 50 errors about one object
 * of 100,000 keys made a 74 MB response to a 1.5 MB request.
 * @default 1_000 // characters per variable error message
 */
export const MAX_ERROR_MESSAGE_CHARS = 1_000;

function shortened(message: string): string {
  if (message.length <= MAX_ERROR_MESSAGE_CHARS) return message;
  return `${message.slice(0, MAX_ERROR_MESSAGE_CHARS)}… (${message.length - MAX_ERROR_MESSAGE_CHARS} more characters left out)`;
}

export function withBadUserInputCode(result: ExecutionResult): ExecutionResult {
  if (result.data !== undefined || !result.errors?.length) return result;
  if (!result.errors.some(isUncodedRequestError)) return result;
  return {
    ...result,
    errors: capped(result.errors).map((e) =>
      !isUncodedRequestError(e)
        ? e
        : new GraphQLError(shortened(e.message), {
            nodes: e.nodes ?? null,
            source: e.source ?? null,
            positions: e.positions ?? null,
            extensions: { ...e.extensions, code: 'BAD_USER_INPUT' },
          }),
    ),
  };
}

export function useBadUserInputCode(): Plugin {
  return usePayloadFormatter((result) => {
    const coded = withBadUserInputCode(result);
    return coded === result ? false : coded;
  }) as Plugin;
}

/**
 * Every value in the variables, containers included, counted without recursion (a client may nest
 * 100,000 levels deep) and given up past `limit`.
 */
function countValues(variables: unknown, limit: number): number {
  const pending: unknown[] = [variables];
  let count = 0;
  while (pending.length > 0 && count <= limit) {
    const value = pending.pop();
    count++;
    if (value !== null && typeof value === 'object') {
      for (const inner of Object.values(value)) pending.push(inner);
    }
  }
  return count;
}

/**
 * TOO_MANY_VARIABLE_VALUES when the variables hold more than `limit` values. Coercion quotes a
 * refused value in each of up to 51 errors; quoting an object of 100,000 keys takes half a second,
 * so one 1.5 MB request cost 21 s of CPU before this cap.
 */
function tooManyValues(variables: unknown, limit: number): GraphQLError | undefined {
  if (variables === null || typeof variables !== 'object') return undefined;
  const count = countValues(variables, limit);
  if (count <= limit) return undefined;
  return limitError(
    LimitCode.TooManyVariableValues,
    `the variables hold more than ${limit} values; the limit is ${limit}`,
    limit,
  );
}

/**
 * Coerces an operation's variables with graphql-js before graphql-jit runs it: graphql-js gives
 * up after MAX_REQUEST_ERRORS, while graphql-jit builds an error for every bad item, which let a
 * 4 MB list of bad messages cost seconds of CPU. A valid request pays one more coercion (cheap
 * next to executing it); an invalid one is answered with BAD_USER_INPUT without executing. Before
 * that, queries, mutations and subscriptions alike, the variables' values are counted.
 * @param maxValues TOO_MANY_VARIABLE_VALUES past this many values in one request's variables
 */
export function useEarlyVariableCoercion(maxValues: number): Plugin {
  return {
    onSubscribe({ args, setResultAndStopExecution }) {
      const refused = tooManyValues(args.variableValues, maxValues);
      if (refused) setResultAndStopExecution({ errors: [refused] });
    },
    onExecute({ args, setResultAndStopExecution }) {
      const refused = tooManyValues(args.variableValues, maxValues);
      if (refused) {
        setResultAndStopExecution({ errors: [refused] });
        return;
      }
      const operation = getOperationAST(args.document, args.operationName);
      const definitions = operation?.variableDefinitions;
      if (!definitions?.length) return;
      const coerced = getVariableValues(args.schema, definitions, args.variableValues ?? {}, {
        maxErrors: MAX_REQUEST_ERRORS,
      });
      if (coerced.errors) setResultAndStopExecution(withBadUserInputCode({ errors: coerced.errors }));
    },
  };
}
