import { Kind } from 'graphql';
import { canonicalTimestamp } from '../backends/timestamps.js';
import { InvalidInputError } from '../errors.js';
import { builder } from './builder.js';

function parseDateTime(value: unknown): string {
  const canonical = typeof value === 'string' ? canonicalTimestamp(value) : null;
  if (canonical === null) {
    throw new InvalidInputError(
      'DateTime must be RFC 3339 text with a time zone, e.g. 2026-03-24T21:51:41.123+00:00',
    );
  }
  return canonical;
}

export const DateTime = builder.scalarType('DateTime', {
  description:
    'An instant as RFC 3339 text. Output: the stored form, UTC with a `+00:00` offset and up to nine ' +
    'fraction digits (`2026-03-24T21:51:41.123456789+00:00`), which sorts as text in time order. ' +
    'Input: any RFC 3339 instant with a zone (`Z` or an offset, 0-9 fraction digits); it is ' +
    'converted to UTC. Anything else is an INVALID error.',
  serialize: (value) => value,
  parseValue: parseDateTime,
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING) throw new InvalidInputError('DateTime must be a string');
    return parseDateTime(ast.value);
  },
});
