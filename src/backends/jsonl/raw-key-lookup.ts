/**
 * The raw key the JSONL backend recorded for a file stem, for the JSONL -> SQLite migration
 * (`migrateJsonlToSqlite({ rawKeyFor })`), so that an import keeps `slack/thread:1` rather than
 * zeroclaw's lossy stem. Works while the file is staged as `.jsonl.importing`: sidecars are keyed
 * by stem, not by file.
 */

import { sessionPaths } from './session-paths.js';
import { SidecarStore } from './session-sidecar.js';

export function createRawKeyLookup(dataDir: string): (stem: string) => Promise<string | null> {
  const sidecars = new SidecarStore(sessionPaths(dataDir).keysDir);
  return async (stem) => (await sidecars.read(stem))?.key ?? null;
}
