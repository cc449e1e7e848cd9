import { utimesSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { sanitizeKey } from '../../src/backends/keys.js';
import { openBackend } from '../../src/backends/open-backend.js';
import { toTimestamp } from '../../src/backends/timestamps.js';
import { spawnZeroclawWriter } from '../helpers/zeroclaw-writer.js';
import { type BackendHarness, type OtherWriter, runContractSuite } from './contract.js';

const HOUR_MS = 3_600_000;

/** zeroclaw in another process: its own SQL on its own connection, or its own file operations. */
async function zeroclawProcess(kind: 'sqlite' | 'jsonl', dataDir: string): Promise<OtherWriter> {
  const writer = await spawnZeroclawWriter(kind, dataDir);
  return {
    append: async (key, m) =>
      void (await writer.run({ op: 'append', key, role: m.role, content: m.content })),
    removeLast: async (key) => void (await writer.run({ op: 'removeLast', key })),
    deleteSession: async (key) => void (await writer.run({ op: 'delete', key })),
    close: () => writer.close(),
  };
}

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
  otherWriter: (dataDir) => zeroclawProcess('sqlite', dataDir),
};

const jsonl: BackendHarness = {
  name: 'jsonl',
  open: (dataDir, limits) => openBackend({ kind: 'jsonl', dataDir, limits }),
  async backdate(dataDir, key, hours) {
    const when = new Date(Date.now() - hours * HOUR_MS);
    utimesSync(join(dataDir, 'sessions', `${sanitizeKey(key)}.jsonl`), when, when);
  },
  otherWriter: (dataDir) => zeroclawProcess('jsonl', dataDir),
};

for (const harness of [sqlite, jsonl]) runContractSuite(harness);
