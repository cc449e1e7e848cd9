/**
 * Limits on the shape of a GraphQL document, checked before anything runs: nesting depth,
 * estimated cost, aliases, lexical tokens and directives (graphql-armor). They are envelop
 * plugins, so they hold wherever an operation is parsed and validated through yoga: HTTP, server-
 * sent events, and graphql-ws (which runs every operation through `yoga.getEnveloped`).
 *
 * graphql-armor reports a hit as an untyped `Syntax Error: ...`; here each one becomes a
 * validation error with a stable `extensions.code` (limit-error.ts), the limit and the value found.
 */

import { costLimitPlugin } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesPlugin } from '@escape.tech/graphql-armor-max-directives';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import {
  type ArgumentNode,
  type DocumentNode,
  GraphQLError,
  type IntValueNode,
  Kind,
  type ValidationContext,
  type ValidationRule,
  visit,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { ErrorCode } from '../errors.js';
import { LimitCode, limitError } from './limit-error.js';

export interface QueryLimits {
  /**
   * Deepest field nesting, fragments inlined. Relay paging costs three levels per connection
   * (`messages.edges.node`): `search.edges.node.message.session.messages.edges.node.content` is 9.
   * @default 12
   */
  maxDepth: number;
  /**
   * Largest estimated cost (graphql-armor's model: 1 per scalar, 2 per object, 1.5x per level,
   * times a literal `first`/`last`). A dashboard of 50 sessions with their last 20 messages (five
   * fields each, cursors, page info) costs about 123,000 and one session's `messages(first: 1000)`
   * about 50,000; 100 sessions x 100 messages cost 435,000 and 1000 x 1000 about 43 million. A
   * page size given as a variable counts as 1 (the rule sees no variables): the page cap bounds it.
   * @default 200_000
   */
  maxCost: number;
  /** Aliased fields per operation (`__typename` is free). @default 30 */
  maxAliases: number;
  /** Lexical tokens per document; the full introspection query is about 300. @default 2_000 */
  maxTokens: number;
  /** Directives per operation (`@include`, `@skip`). @default 50 */
  maxDirectives: number;
  /**
   * The store's page cap (StoreLimits.maxPageSize). A literal `first`/`last` above it is refused
   * here with the store's own TOO_LARGE (field, limit, actual), and the cost limit says nothing
   * then: its estimate multiplies by the refused size.
   * @default 1_000
   */
  maxPageSize: number;
}

export const DEFAULT_QUERY_LIMITS: QueryLimits = Object.freeze({
  maxDepth: 12,
  maxCost: 200_000,
  maxAliases: 30,
  maxTokens: 2_000,
  maxDirectives: 50,
  maxPageSize: 1_000,
});

/** graphql-armor's rejection messages end with `found <n>.` */
function foundIn(error: GraphQLError): number | undefined {
  const found = /found (\d+(?:\.\d+)?)\.?$/.exec(error.message)?.[1];
  return found === undefined ? undefined : Math.ceil(Number(found));
}

/** An armor rule's options: report a typed validation error instead of throwing its own. */
function reportAs(code: LimitCode, limit: number, describe: (limit: number, found: string) => string) {
  return {
    n: limit,
    propagateOnRejection: false,
    onReject: [
      (context: ValidationContext | null, error: GraphQLError) => {
        const actual = foundIn(error);
        context?.reportError(limitError(code, describe(limit, String(actual ?? '?')), limit, actual));
      },
    ],
  };
}

const PAGE_ARGUMENTS = new Set(['first', 'last']);

/** Literal `first`/`last` values above `maxPageSize`, in document order. */
function oversizedPages(document: DocumentNode, maxPageSize: number): ArgumentNode[] {
  const found: ArgumentNode[] = [];
  visit(document, {
    Argument(node) {
      if (!PAGE_ARGUMENTS.has(node.name.value) || node.value.kind !== Kind.INT) return;
      if (Number(node.value.value) > maxPageSize) found.push(node);
    },
  });
  return found;
}

/** TOO_LARGE, as the store would say it, for each literal page size over the cap. */
function pageSizeRule(maxPageSize: number): ValidationRule {
  return (context) => ({
    Document(document) {
      for (const node of oversizedPages(document, maxPageSize)) {
        const field = node.name.value;
        const actual = Number((node.value as IntValueNode).value);
        context.reportError(
          new GraphQLError(`${field} is at most ${maxPageSize}; got ${actual}`, {
            nodes: node,
            extensions: { code: ErrorCode.TooLarge, field, limit: maxPageSize, actual, unit: 'items' },
          }),
        );
      }
    },
  });
}

/** The plugins, in the order they must run; register them before the subscription executor. */
export function queryLimitPlugins(limits: QueryLimits): Plugin[] {
  const depth = reportAs(
    LimitCode.QueryTooDeep,
    limits.maxDepth,
    (limit, found) => `the query nests ${found} levels deep; the limit is ${limit}`,
  );
  const cost = reportAs(
    LimitCode.QueryTooComplex,
    limits.maxCost,
    (limit, found) =>
      `the query's estimated cost is ${found}; the limit is ${limit} (ask for smaller pages or fewer fields)`,
  );
  const aliases = reportAs(
    LimitCode.TooManyAliases,
    limits.maxAliases,
    (limit, found) => `the query uses ${found} aliases; the limit is ${limit}`,
  );
  const directives = reportAs(
    LimitCode.TooManyDirectives,
    limits.maxDirectives,
    (limit, found) => `the query uses ${found} directives; the limit is ${limit}`,
  );
  return [
    maxTokensPlugin({
      n: limits.maxTokens,
      propagateOnRejection: false,
      onReject: [
        // thrown from inside the parser: parsing stops at the first token over the limit
        () => {
          throw limitError(
            LimitCode.TooManyTokens,
            `the document has more than ${limits.maxTokens} tokens; the limit is ${limits.maxTokens}`,
            limits.maxTokens,
          );
        },
      ],
    }) as Plugin,
    maxDepthPlugin({ ...depth, flattenFragments: true }) as Plugin,
    {
      onValidate({ addValidationRule }) {
        addValidationRule(pageSizeRule(limits.maxPageSize));
      },
    },
    costLimitPlugin({
      maxCost: cost.n,
      propagateOnRejection: false,
      onReject: [
        (context, error) => {
          if (context && oversizedPages(context.getDocument(), limits.maxPageSize).length > 0) return;
          for (const report of cost.onReject) report(context, error);
        },
      ],
      flattenFragments: true,
    }) as Plugin,
    maxAliasesPlugin(aliases) as Plugin,
    maxDirectivesPlugin(directives) as Plugin,
  ];
}
