import { utimesSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { sanitizeKey } from '../../src/backends/keys.js';
import { openBackend } from '../../src/backends/open-backend.js';
import { toTimestamp } from '../../src/backends/timestamps.js';
import { type BackendHarness, runContractSuite } from './contract.js';

const HOUR_MS = 3_600_000;

const sqlite: BackendHarness = {
  name: 'sqlite',
  open: (dataDir, limits) => openBackend({ kind: 'sqlite', dataDir, limits }),
  async backdate(dataDir, key, hours) {
    const db = new Database(join(dataDir, 'sessions', 'sessions.db'));
    try {
      db.prepare('UPDATE session_metadata SET last_activity = ? WHERE session_key = ?').run(
        toTimestamp(Date.now() - hours * HOUR_MS),
        key,
      );
    } finally {
      db.close();
    }
  },
};

const jsonl: BackendHarness = {
  name: 'jsonl',
  open: (dataDir, limits) => openBackend({ kind: 'jsonl', dataDir, limits }),
  async backdate(dataDir, key, hours) {
    const when = new Date(Date.now() - hours * HOUR_MS);
    utimesSync(join(dataDir, 'sessions', `${sanitizeKey(key)}.jsonl`), when, when);
  },
};

for (const harness of [sqlite, jsonl]) runContractSuite(harness);
