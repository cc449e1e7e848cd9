import { Command } from 'commander';
import { type Config, parseConfig, serveOptions } from '../../src/config.js';

/**
 * The Config that `sessiongraph serve <argv>` would run with, through the same commander options
 * and parser, with `env` set as SESSIONGRAPH_* variables for the call (and restored after).
 */
export function parseServeArgs(argv: string[], env: Record<string, string> = {}): Config {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const command = new Command().exitOverride();
    for (const option of serveOptions()) command.addOption(option);
    command.parse(argv, { from: 'user' });
    return parseConfig(command.opts(), (a) => command.getOptionValueSource(a));
  } finally {
    for (const key of Object.keys(env)) delete process.env[key];
    Object.assign(process.env, saved);
  }
}
