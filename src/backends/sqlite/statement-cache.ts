import type Database from 'better-sqlite3';

export type Statement = Database.Statement<unknown[], unknown>;

/**
 * Prepares each distinct SQL text once per connection. Queries with optional filters are built
 * as text, so the cache keys on the text rather than on a fixed list of statements.
 */
export function createStatementCache(db: Database.Database): (source: string) => Statement {
  const cache = new Map<string, Statement>();
  return (source) => {
    let statement = cache.get(source);
    if (!statement) {
      statement = db.prepare(source);
      cache.set(source, statement);
    }
    return statement;
  };
}
