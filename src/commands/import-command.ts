/**
 * `sessiongraph import [file]`: an export stream from stdin or a file into the configured store.
 * Rerunning it with the same export finishes an interrupted run and stores nothing twice
 * (src/backends/copy/import-sessions.ts). A progress bar on stderr when it is a terminal; the
 * summary on stderr; exit 1 when a session failed or the export was cut short.
 */

import { createReadStream } from 'node:fs';
import type { Command } from 'commander';
import { Option } from 'commander';
import { importSessions } from '../backends/copy/import-sessions.js';
import { readLines } from '../backends/copy/read-lines.js';
import { storageOptions } from '../config.js';
import { isAppError } from '../errors.js';
import { createLogger } from '../logger.js';
import { EXIT_FAILURE, EXIT_USAGE, exitCodesHelp } from './exit-codes.js';
import { createProgressBar } from './progress-bar.js';
import { openStore, storageConfigOf } from './storage-config.js';

export function registerImportCommand(program: Command): void {
  const command = program
    .command('import')
    .description('read an export (from stdin or <file>) into the configured store; rerun it to resume')
    .argument('[file]', 'read this file instead of stdin')
    .addOption(
      new Option(
        '--batch-size <messages>',
        'messages per atomic append (at most the store batch cap)',
      ).default('500'),
    );
  for (const option of storageOptions()) command.addOption(option);
  command.addHelpText(
    'after',
    `
A session the store already holds is compared message by message: what matches is skipped, the
rest is appended, so a rerun after a crash resumes where it stopped. A session whose stored
messages differ from the export is left as it is and reported. Times are kept (PostgreSQL keeps
microseconds; JSONL keeps no times).

Examples:
  sessiongraph import --backend postgres --database-url postgres://user@db:5432/app sessions.jsonl
  sessiongraph export --data ./old | sessiongraph import --data ./new

${exitCodesHelp()}`,
  );

  command.action(async (file: string | undefined, values: Record<string, unknown>, self: Command) => {
    const config = storageConfigOf(values, self);
    const batchSize = Number(values.batchSize);
    if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
      self.error(
        `--batch-size: must be a whole number from 1 to 10000 (got ${JSON.stringify(values.batchSize)})`,
        {
          exitCode: EXIT_USAGE,
        },
      );
    }
    const logger = createLogger({ level: config.logLevel });
    const backend = await openStore(config, logger);
    const bar = createProgressBar(process.stderr, 'import');
    try {
      const input = file === undefined ? process.stdin : createReadStream(file);
      const summary = await importSessions(backend, readLines(input), {
        batchSize,
        onProgress: (p) => bar.update(p),
        logger,
      });
      bar.done();
      const out = process.stderr;
      out.write(
        `imported ${summary.imported} messages (${summary.present} were there already) in ${summary.sessions} sessions\n`,
      );
      for (const key of summary.ahead) {
        out.write(`kept ${JSON.stringify(key)}: the store holds its messages and later ones\n`);
      }
      for (const { key, error } of summary.failed)
        out.write(`failed ${JSON.stringify(key)}: ${error.message}\n`);
      if (!summary.complete)
        out.write('the export ended early (no end line): run again with the whole export\n');
      if (summary.failed.length > 0 || !summary.complete) process.exitCode = EXIT_FAILURE;
    } catch (err) {
      bar.done();
      if (!isAppError(err)) throw err;
      process.stderr.write(`import failed: ${err.message}\nrun it again to resume\n`);
      process.exitCode = EXIT_FAILURE;
    } finally {
      await backend.close();
    }
  });
}
