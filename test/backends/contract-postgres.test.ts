import { basename } from 'node:path';
import pg from 'pg';
import { afterAll } from 'vitest';
import { openPostgresBackend } from '../../src/backends/postgres/postgres-backend.js';
import { dropSchemas, TEST_DATABASE_URL, withAdminClient } from '../helpers/postgres-database.js';
import { runContractSuite } from './contract.js';

/** One schema per temp workspace, so a reopen of the same dataDir finds its data. */
const schemaOf = (dataDir: string) =>
  basename(dataDir)
    .replace(/[^A-Za-z0-9]/g, '_')
    .slice(0, 63);
const created = new Set<string>();

afterAll(() => dropSchemas(created));

runContractSuite({
  name: 'postgres',
  open(dataDir, limits) {
    const schema = schemaOf(dataDir);
    created.add(schema);
    return openPostgresBackend({ databaseUrl: TEST_DATABASE_URL, schema, limits, poolSize: 4 });
  },
  /** A second instance on the same schema, as another server process would be. */
  async otherWriter(dataDir) {
    const other = await openPostgresBackend({ databaseUrl: TEST_DATABASE_URL, schema: schemaOf(dataDir) });
    return {
      append: async (key, message) => void (await other.append(key, [message])),
      removeLast: async (key) => void (await other.removeLast(key)),
      deleteSession: (key) => other.deleteSession(key),
      close: () => other.close(),
    };
  },
  async backdate(dataDir, key, hours) {
    await withAdminClient((client) =>
      client.query(
        `UPDATE ${pg.escapeIdentifier(schemaOf(dataDir))}.sessions
         SET last_activity = now() - $2::float8 * interval '1 hour' WHERE key = $1`,
        [key, hours],
      ),
    );
  },
});
