/**
 * `sessiongraph export [file]`: the configured store as an export stream (JSON lines, see
 * src/backends/copy/export-format.ts) on stdout or into a file; a progress bar on stderr when it
 * is a terminal, and one summary line there at the end.
 */

import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { exportSessions } from '../backends/copy/export-sessions.js';
import { storageOptions } from '../config.js';
import { createLogger } from '../logger.js';
import { EXIT_FAILURE, exitCodesHelp } from './exit-codes.js';
import { createProgressBar } from './progress-bar.js';
import { openStore, storageConfigOf } from './storage-config.js';

/** @default 65_536 // characters per write: one write per line would dominate a large export */
const CHUNK_CHARS = 65_536;

async function* chunked(lines: AsyncIterable<string>): AsyncGenerator<string> {
  let chunk = '';
  for await (const line of lines) {
    chunk += line;
    if (chunk.length >= CHUNK_CHARS) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk.length > 0) yield chunk;
}

export function registerExportCommand(program: Command): void {
  const command = program
    .command('export')
    .description('write every session with its messages and times as JSON lines, to stdout or to <file>')
    .argument('[file]', 'write into this file instead of stdout')
    .option('--key-prefix <prefix>', 'only the sessions whose key starts with this');
  for (const option of storageOptions()) command.addOption(option);
  command.addHelpText(
    'after',
    `
The stream starts with a header line, then each session (key order) followed by its messages in
order, and ends with an "end" line; import reads it into any backend.

Examples:
  sessiongraph export --data ./workspace > sessions.jsonl
  sessiongraph export --data ./workspace | sessiongraph import --backend postgres --database-url postgres://...

${exitCodesHelp()}`,
  );

  command.action(async (file: string | undefined, values: Record<string, unknown>, self: Command) => {
    const config = storageConfigOf(values, self);
    const logger = createLogger({ level: config.logLevel });
    const backend = await openStore(config, logger);
    const bar = createProgressBar(process.stderr, 'export');
    try {
      const lines = exportSessions(backend, {
        keyPrefix: typeof values.keyPrefix === 'string' ? values.keyPrefix : undefined,
        onProgress: (p) => bar.update(p),
      });
      const totals = { sessions: 0, messages: 0 };
      const counted = (async function* () {
        const result = yield* lines;
        Object.assign(totals, result);
      })();
      const out = file === undefined ? process.stdout : createWriteStream(file);
      await pipeline(Readable.from(chunked(counted)), out, { end: file !== undefined });
      bar.done();
      process.stderr.write(`exported ${totals.sessions} sessions, ${totals.messages} messages\n`);
    } catch (err) {
      bar.done();
      process.stderr.write(`export failed: ${(err as Error).message}\n`);
      process.exitCode = EXIT_FAILURE;
    } finally {
      await backend.close();
    }
  });
}
