import SchemaBuilder from '@pothos/core';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import ErrorsPlugin from '@pothos/plugin-errors';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import SimpleObjectsPlugin from '@pothos/plugin-simple-objects';
import ValidationPlugin from '@pothos/plugin-validation';
import { canAdmin, canWrite } from '../auth/principal.js';
import { AppError, ForbiddenError, InvalidInputError } from '../errors.js';
import type { Context } from './context.js';

const NODE_TYPES = new Set(['Session', 'Message']);
const isNodeType = (typename: string) => NODE_TYPES.has(typename);

/**
 * The one Pothos builder. It defines no types: each file under src/schema/ owns its types, their
 * root fields and inputs, and index.ts assembles them.
 *
 * - Output fields are non-null unless a field says otherwise.
 * - Errors plugin: a mutation's expected failures are members of its result union. The default
 *   member is our AppError base, never the global Error, so an internal error can never become a
 *   typed result and bypass masking.
 * - Scope-auth plugin: a field declares the scope it needs (`authScopes: { write: true }`); a caller
 *   without it gets a ForbiddenError, which the errors plugin (listed first, so it wraps it) makes
 *   a member of the mutation's result union. Key prefixes are enforced where every read and write
 *   passes, the backend view of src/auth/scoped-backend.ts.
 * - Validation plugin: an input that fails its zod schema is an InvalidInputError, which reaches
 *   the client as a GraphQL error with `extensions.code: INVALID` (see format-error.ts).
 */
export const builder = new SchemaBuilder<{
  Context: Context;
  DefaultFieldNullability: false;
  DefaultEdgesNullability: false;
  DefaultNodeNullability: false;
  /** What the caller's token allows (src/auth/principal.ts); every token may read. */
  AuthScopes: { write: boolean; admin: boolean };
  Scalars: {
    /** Canonical chrono-style RFC 3339 text, both ways (see scalars.ts). */
    DateTime: { Input: string; Output: string };
  };
}>({
  plugins: [
    ErrorsPlugin,
    ScopeAuthPlugin,
    RelayPlugin,
    ValidationPlugin,
    DataloaderPlugin,
    SimpleObjectsPlugin,
  ],
  scopeAuth: {
    authScopes: (ctx) => ({ write: canWrite(ctx.principal), admin: canAdmin(ctx.principal) }),
    unauthorizedError: (_parent, ctx, info) =>
      new ForbiddenError(`token ${ctx.principal.name} lacks the scope ${info.fieldName} needs`),
  },
  defaultFieldNullability: false,
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    nodeQueryOptions: {
      description: 'Fetches a Session or a Message by its global id; null when it no longer exists.',
      args: { id: { description: 'A global id, as read from any `id` field.' } },
      // an id that names no node type is a node that does not exist, not a server error
      resolve: (_root, { id }, _ctx, _info, resolveNode) =>
        isNodeType(id.typename) ? resolveNode(id) : null,
    },
    // DESIGN's API has node(id:) only: no batch lookup to secure and document twice
    nodesQueryOptions: false,
    nodeTypeOptions: { description: 'An object with a global id, refetchable with `node(id:)`.' },
    pageInfoTypeOptions: { description: 'Where a connection page sits in the whole list (Relay).' },
    idFieldOptions: { description: 'Global id, opaque; pass it to `node(id:)`.' },
    cursorFieldOptions: { description: 'Opaque position of this edge; pass it as `after` or `before`.' },
    nodeFieldOptions: { nullable: false, description: 'The item at this edge.' },
    edgesFieldOptions: { nullable: false, description: 'The items of this page, in list order.' },
    pageInfoFieldOptions: { description: 'Cursors and whether more items exist on either side.' },
    hasNextPageFieldOptions: { description: 'More items follow this page.' },
    hasPreviousPageFieldOptions: { description: 'More items precede this page.' },
    startCursorFieldOptions: { description: 'Cursor of the first edge; null on an empty page.' },
    endCursorFieldOptions: { description: 'Cursor of the last edge; null on an empty page.' },
    firstArgOptions: { description: 'Page forward: at most this many items after `after`.' },
    afterArgOptions: { description: 'A cursor: return items after it.' },
    lastArgOptions: { description: 'Page backward: at most this many items before `before`.' },
    beforeArgOptions: { description: 'A cursor: return items before it.' },
  },
  errors: {
    defaultTypes: [AppError as unknown as typeof Error],
    directResult: true,
    defaultUnionOptions: {
      description: 'The payload on success, or an `Error` type saying why nothing was changed.',
      name: ({ fieldName }) => `${fieldName.slice(0, 1).toUpperCase()}${fieldName.slice(1)}Result`,
    },
  },
  validation: {
    validationError: (failure) => {
      const issue = failure.issues[0];
      const path = issue?.path?.map((p) => String(typeof p === 'object' ? p.key : p)).join('.');
      return new InvalidInputError(issue?.message ?? 'invalid input', path || undefined);
    },
  },
});
