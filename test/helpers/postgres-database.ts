/**
 * The PostgreSQL the tests use: SESSIONGRAPH_TEST_DATABASE_URL, or the local trust-auth server.
 * No skip when it is down: a test that needs it fails.
 */

import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const TEST_DATABASE_URL =
  process.env.SESSIONGRAPH_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A schema name no other test uses: `prefix` plus random hex. */
export function uniqueSchema(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** Runs `work` on a connection of its own, outside any backend's pool. */
export async function withAdminClient<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export async function dropSchemas(names: Iterable<string>): Promise<void> {
  const list = [...names];
  if (list.length === 0) return;
  await withAdminClient(async (client) => {
    for (const name of list) await client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(name)} CASCADE`);
  });
}

/** The listening connections of `schema`'s watchers, by the application name they give. */
export async function listenerPids(schema: string): Promise<number[]> {
  return withAdminClient(async (admin) => {
    const { rows } = await admin.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
      [`sessiongraph listen ${schema}`],
    );
    return rows.map((r) => r.pid);
  });
}
