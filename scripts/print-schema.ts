/**
 * `npm run schema`: writes schema.graphql (sorted SDL of the Pothos schema).
 * `npm run schema:check`: exits 1 when the checked-in file differs from the code.
 */

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { lexicographicSortSchema, printSchema } from 'graphql';
import { schema } from '../src/schema/index.js';

export const SCHEMA_FILE = fileURLToPath(new URL('../schema.graphql', import.meta.url));

/** The SDL schema.graphql must hold. */
export function printedSchema(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}

function main(): void {
  const sdl = printedSchema();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(SCHEMA_FILE, 'utf8');
    } catch {}
    if (current !== sdl) {
      console.error('schema.graphql is out of date: run `npm run schema` and commit it');
      process.exit(1);
    }
    console.log('schema.graphql is up to date');
    return;
  }
  writeFileSync(SCHEMA_FILE, sdl);
  console.log('wrote schema.graphql');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
