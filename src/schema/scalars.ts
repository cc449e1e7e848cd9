import { Kind } from 'graphql';
import { parseTimestamp, timestampProblemText } from '../backends/timestamps.js';
import { InvalidInputError } from '../errors.js';
import { builder } from './builder.js';

function parseDateTime(value: unknown): string {
  const parsed = typeof value === 'string' ? parseTimestamp(value) : { problem: 'format' as const };
  if ('problem' in parsed) throw new InvalidInputError(timestampProblemText('DateTime', parsed.problem));
  return parsed.canonical;
}

export const DateTime = builder.scalarType('DateTime', {
  description:
    'An instant as RFC 3339 text. Output: the stored form, UTC with a `+00:00` offset and up to nine ' +
    'fraction digits (`2026-03-24T21:51:41.123456789+00:00`), which sorts as text in time order. ' +
    'Input: any RFC 3339 instant with a zone (`Z` or an offset, 0-9 fraction digits); it is ' +
    'converted to UTC, and must fall within UTC years 0000 to 9999 (the range every backend stores ' +
    'and compares). Anything else is an INVALID error.',
  serialize: (value) => value,
  parseValue: parseDateTime,
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING) throw new InvalidInputError('DateTime must be a string');
    return parseDateTime(ast.value);
  },
});
