#!/usr/bin/env node
/**
 * The `sessiongraph` command. `serve` prints the GraphQL URL on stdout (logs go to stderr as JSON
 * lines) and stops cleanly on SIGINT/SIGTERM: in-flight requests finish, the store is closed,
 * exit code 0. `export` and `import` (src/commands/) copy a store through an export stream; `tail`
 * follows a session (or the session list) live. A bad flag or variable exits with code 2 and says
 * which and why.
 */

import { readFileSync } from 'node:fs';
import { Command, type CommanderError } from 'commander';
import { EXIT_USAGE } from './commands/exit-codes.js';
import { registerExportCommand } from './commands/export-command.js';
import { programHelp, serveHelp } from './commands/help-text.js';
import { registerImportCommand } from './commands/import-command.js';
import { registerMigrateCommand } from './commands/migrate-command.js';
import { registerTailCommand } from './commands/tail-command.js';
import { ConfigError, parseConfig, serveOptions } from './config.js';
import { createLogger } from './logger.js';
import { startServer } from './server.js';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command('sessiongraph')
  .description('A GraphQL server over zeroclaw-compatible chat-session storage')
  .version(version)
  .exitOverride((err: CommanderError) => {
    process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
  })
  .addHelpText('after', programHelp());

const serve = program
  .command('serve')
  .description('serve the GraphQL API (flags also read from SESSIONGRAPH_* variables; a flag wins)');
for (const option of serveOptions()) serve.addOption(option);
serve.addHelpText('after', serveHelp());

serve.action(async (values: Record<string, unknown>, command: Command) => {
  let config: ReturnType<typeof parseConfig>;
  try {
    config = parseConfig(values, (attribute) => command.getOptionValueSource(attribute));
  } catch (err) {
    if (err instanceof ConfigError) command.error(err.message, { exitCode: EXIT_USAGE });
    throw err;
  }
  const logger = createLogger({ level: config.logLevel });
  // The handlers go in before the server starts: the "listening" log line already shows the URL,
  // so a Ctrl-C may come while startServer is still returning. Such a signal stops the server as
  // soon as it is up, with the same clean shutdown and exit code 0.
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  let stopping = false;
  const shutdown = (running: NonNullable<typeof server>) =>
    running.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    if (server) void shutdown(server);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    server = await startServer(config, { logger });
  } catch (err) {
    // a tokens file that cannot be read or parsed is a usage error, like a bad flag
    if (err instanceof ConfigError) command.error(err.message, { exitCode: EXIT_USAGE });
    throw err;
  }
  process.stdout.write(`${server.url}\n`);
  if (stopping) {
    void shutdown(server);
    return;
  }
  // re-reads --tokens-file: removed tokens stop, their live subscriptions at their next event
  const running = server;
  process.on('SIGHUP', () => running.reloadTokens());
});

registerExportCommand(program);
registerImportCommand(program);
registerMigrateCommand(program);
registerTailCommand(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  createLogger().fatal({ err }, 'sessiongraph failed to start');
  process.exit(1);
});
