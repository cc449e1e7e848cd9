/**
 * `sessiongraph migrate --data <workspace>`: the workspace's JSONL sessions into its SQLite store,
 * the way zeroclaw imports them (src/backends/migrate.ts): each file in one transaction with a
 * receipt, then archived as `X.jsonl.migrated`, so a run that is killed is finished by the next one,
 * by sessiongraph or zeroclaw, without duplicates or loss. A progress bar on stderr when it is a
 * terminal; the summary on stderr, or as one JSON object on stdout with `--json`; exit 1 when a
 * file failed (it is left in place, and the next run tries it again).
 */

import { statSync } from 'node:fs';
import type { Command } from 'commander';
import { type MigrationSummary, migrateJsonlToSqlite } from '../backends/migrate.js';
import { ConfigError, type MigrateConfig, migrateOptions, parseMigrateConfig } from '../config.js';
import { isAppError } from '../errors.js';
import { createLogger } from '../logger.js';
import { EXIT_FAILURE, EXIT_USAGE, exitCodesHelp } from './exit-codes.js';
import { createProgressBar } from './progress-bar.js';

interface MigrateValues {
  json?: boolean;
  [option: string]: unknown;
}

export function registerMigrateCommand(program: Command): void {
  const command = program
    .command('migrate')
    .description("import the workspace's JSONL sessions into its SQLite store (zeroclaw-compatible)")
    .option('--json', 'print the summary as one JSON object on stdout');
  for (const option of migrateOptions()) command.addOption(option);
  command.addHelpText(
    'after',
    `
Reads <data>/sessions/*.jsonl and writes them into <data>/sessions/sessions.db, exactly as
zeroclaw's own import does: one transaction per file with a receipt in jsonl_import_receipts,
then the file is archived as X.jsonl.migrated. Interrupted runs (ours or zeroclaw's) are finished
by the next run, without duplicates. Unreadable lines are skipped and counted. A zeroclaw agent
may keep running meanwhile. The summary: sessions and messages imported, unreadable lines
skipped, files already imported, files that failed (each named, with why).

Examples:
  sessiongraph migrate --data ~/.zeroclaw/workspace
  SESSIONGRAPH_DATA=./workspace sessiongraph migrate --json | jq .messages

${exitCodesHelp()}`,
  );

  command.action(async (values: MigrateValues, self: Command) => {
    let config: MigrateConfig;
    try {
      config = parseMigrateConfig(values, (attribute) => self.getOptionValueSource(attribute));
    } catch (err) {
      if (err instanceof ConfigError) self.error(err.message, { exitCode: EXIT_USAGE });
      throw err;
    }
    // a mistyped --data would otherwise be a workspace with nothing to migrate
    if (!statSync(config.dataDir, { throwIfNoEntry: false })?.isDirectory()) {
      self.error(`--data: no such folder: ${config.dataDir}`, { exitCode: EXIT_USAGE });
    }
    const logger = createLogger({ level: config.logLevel });
    const bar = createProgressBar(process.stderr, 'migrate');
    let messages = 0;
    let summary: MigrationSummary;
    try {
      summary = await migrateJsonlToSqlite({
        dataDir: config.dataDir,
        logger,
        onProgress: (p) => {
          messages += p.messages;
          bar.update({ sessions: p.index, totalSessions: p.total, messages, totalMessages: null });
        },
      });
    } catch (err) {
      bar.done();
      if (!isAppError(err)) throw err;
      process.stderr.write(`migrate failed: ${err.message}\n`);
      process.exitCode = EXIT_FAILURE;
      return;
    }
    bar.done();
    if (values.json) process.stdout.write(`${JSON.stringify(toJson(summary))}\n`);
    else process.stderr.write(describe(summary, config.dataDir));
    if (summary.failed > 0) process.exitCode = EXIT_FAILURE;
  });
}

function toJson(summary: MigrationSummary) {
  return {
    sessions: summary.sessions,
    messages: summary.messages,
    skippedLines: summary.skippedLines,
    alreadyImported: summary.alreadyImported,
    failed: summary.outcomes.flatMap((o) =>
      o.status === 'failed'
        ? [{ file: o.file, sessionKey: o.sessionKey, code: o.error.code, error: o.error.message }]
        : [],
    ),
  };
}

function describe(summary: MigrationSummary, dataDir: string): string {
  if (summary.outcomes.length === 0) return `nothing to migrate: no .jsonl sessions in ${dataDir}/sessions\n`;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const lines = [
    `migrated ${plural(summary.sessions, 'session')}, ${plural(summary.messages, 'message')} ` +
      `(${plural(summary.skippedLines, 'unreadable line')} skipped)`,
  ];
  if (summary.alreadyImported > 0)
    lines.push(`${plural(summary.alreadyImported, 'file')} had been imported already`);
  for (const outcome of summary.outcomes) {
    if (outcome.status === 'failed') lines.push(`failed ${outcome.file}: ${outcome.error.message}`);
  }
  if (summary.failed > 0) lines.push('the failed files are left in place: fix them and run migrate again');
  return `${lines.join('\n')}\n`;
}
