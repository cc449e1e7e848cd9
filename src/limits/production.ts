/**
 * What `--production` turns off: schema introspection (a client cannot list the API it was not
 * told about) and the "Did you mean ...?" hints in error messages, which would reveal field, type
 * and enum names one guess at a time. GraphiQL is turned off in server.ts (yoga's `graphiql`).
 */

import {
  GraphQLError,
  type GraphQLErrorExtensions,
  NoSchemaIntrospectionCustomRule,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import { type Plugin, usePayloadFormatter } from 'graphql-yoga';
import { LimitCode } from './limit-error.js';

/** graphql-js' hints: ` Did you mean "a", "b" or "c"?` and ` Did you mean the enum value "X"?` */
const SUGGESTION = /\s*Did you mean [^?]*\?/g;

/** The message without its suggestions; the error itself when there are none. */
export function withoutSuggestions(error: GraphQLError): GraphQLError {
  if (!error.message.includes('Did you mean')) return error;
  return new GraphQLError(error.message.replace(SUGGESTION, ''), {
    nodes: error.nodes ?? null,
    source: error.source ?? null,
    positions: error.positions ?? null,
    path: error.path ?? null,
    originalError: error.originalError ?? null,
    extensions: error.extensions,
  });
}

/** A rule whose every report carries `extensions.code`. */
function withCode(rule: ValidationRule, code: string): ValidationRule {
  return (context: ValidationContext) => {
    const coded = Object.create(context, {
      reportError: {
        value: (error: GraphQLError) => {
          const extensions: GraphQLErrorExtensions = { ...error.extensions, code };
          context.reportError(
            new GraphQLError('introspection is disabled on this server', {
              nodes: error.nodes ?? null,
              extensions,
            }),
          );
        },
      },
    }) as ValidationContext;
    return rule(coded);
  };
}

/** Refuses `__schema` and `__type` with INTROSPECTION_DISABLED; `__typename` stays allowed. */
export function useNoIntrospection(): Plugin {
  const rule = withCode(NoSchemaIntrospectionCustomRule, LimitCode.IntrospectionDisabled);
  return {
    onValidate({ addValidationRule }) {
      addValidationRule(rule);
    },
  };
}

/** Drops suggestions from validation errors and from execution errors (variable coercion). */
export function useNoSuggestions(): Plugin[] {
  return [
    {
      onValidate() {
        return ({ valid, result, setResult }) => {
          if (!valid) setResult(result.map((e) => (e instanceof GraphQLError ? withoutSuggestions(e) : e)));
        };
      },
    },
    usePayloadFormatter((result) => {
      if (!result.errors?.some((e) => e.message.includes('Did you mean'))) return false;
      return { ...result, errors: result.errors.map(withoutSuggestions) };
    }) as Plugin,
  ];
}
