/**
 * The real `sessiongraph` binary (src/cli.ts through tsx): `migrate` over real workspaces, and
 * `--help` of the program and of every command, with the documented exit codes.
 */

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openBackend } from '../../src/backends/open-backend.js';
import { EXIT_CODES, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../../src/commands/exit-codes.js';

const ROOT = new URL('../..', import.meta.url);
const work = mkdtempSync(join(tmpdir(), 'sg-migrate-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `sessiongraph <args>` with no SESSIONGRAPH_* variable but `env`; stdout and stderr are pipes. */
function sessiongraph(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('SESSIONGRAPH_')),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: ROOT,
    env: { ...inherited, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

const line = (role: string, content: string) => `${JSON.stringify({ role, content })}\n`;

/** A zeroclaw workspace with JSONL sessions: `files` maps file names to their text. */
function workspace(name: string, files: Record<string, string>): string {
  const dir = join(work, name);
  mkdirSync(join(dir, 'sessions'), { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, 'sessions', file), text);
  return dir;
}

describe('sessiongraph migrate', () => {
  it('imports the JSONL sessions with receipts, skips unreadable lines, sums up, and a rerun finds nothing', async () => {
    const dir = workspace('plain', {
      'telegram_1.jsonl': line('user', 'hi') + line('assistant', 'hello') + line('user', 'bye'),
      'discord_2.jsonl': `${line('user', 'one')}not json\n{"role":"user"\n${line('tool', '{"ok":true}')}`,
    });
    const run = await sessiongraph(['migrate', '--data', dir]);
    expect(run.stderr).toContain('migrated 2 sessions, 5 messages (2 unreadable lines skipped)');
    expect(run.code).toBe(EXIT_OK);
    // not a terminal: no progress bar drawn
    expect(run.stderr).not.toContain('\r');
    const files = readdirSync(join(dir, 'sessions')).sort();
    expect(files.filter((f) => f.includes('.jsonl'))).toEqual([
      'discord_2.jsonl.migrated',
      'telegram_1.jsonl.migrated',
    ]);
    expect(files).toContain('sessions.db');

    const db = new Database(join(dir, 'sessions', 'sessions.db'), { readonly: true });
    try {
      const receipts = db.prepare('SELECT source_name FROM jsonl_import_receipts ORDER BY 1').pluck().all();
      expect(receipts).toEqual(['discord_2.jsonl', 'telegram_1.jsonl']);
    } finally {
      db.close();
    }
    const store = await openBackend({ kind: 'sqlite', dataDir: dir });
    try {
      const page = await store.messages('telegram_1');
      expect(page.items.map((m) => m.content)).toEqual(['hi', 'hello', 'bye']);
      expect((await store.session('discord_2'))?.messageCount).toBe(2);
    } finally {
      await store.close();
    }

    const again = await sessiongraph(['migrate', '--data', dir]);
    expect(again.code).toBe(EXIT_OK);
    expect(again.stderr).toContain('nothing to migrate');
  });

  it('reads the workspace from SESSIONGRAPH_DATA and prints the summary as JSON with --json', async () => {
    const dir = workspace('json', { 'rpc_9.jsonl': line('user', 'a') + line('user', 'b') });
    const run = await sessiongraph(['migrate', '--json'], { SESSIONGRAPH_DATA: dir });
    expect(run.code).toBe(EXIT_OK);
    expect(JSON.parse(run.stdout)).toEqual({
      sessions: 1,
      messages: 2,
      skippedLines: 0,
      alreadyImported: 0,
      failed: [],
    });
  });

  it('exits 1 naming each file that failed, imports the others, and leaves the failed one for a rerun', async () => {
    const dir = workspace('failing', {
      'good.jsonl': line('user', 'kept'),
      'garbage.jsonl': 'nope\n{"x":1}\n',
    });
    const run = await sessiongraph(['migrate', '--data', dir]);
    expect(run.code).toBe(EXIT_FAILURE);
    expect(run.stderr).toContain('migrated 1 session, 1 message');
    expect(run.stderr).toMatch(/failed garbage\.jsonl: .+/);
    expect(readdirSync(join(dir, 'sessions'))).toContain('garbage.jsonl');

    const json = await sessiongraph(['migrate', '--data', dir, '--json']);
    expect(json.code).toBe(EXIT_FAILURE);
    expect(JSON.parse(json.stdout).failed).toEqual([
      expect.objectContaining({ file: 'garbage.jsonl', sessionKey: 'garbage', code: 'INVALID' }),
    ]);
  });

  it('exits 2 on bad usage: a workspace that does not exist, an unknown flag, a bad variable', async () => {
    const [missing, badFlag, badLevel] = await Promise.all([
      sessiongraph(['migrate', '--data', join(work, 'nowhere')]),
      sessiongraph(['migrate', '--data', work, '--frobnicate']),
      sessiongraph(['migrate', '--data', work], { SESSIONGRAPH_LOG_LEVEL: 'loud' }),
    ]);
    expect(missing.code).toBe(EXIT_USAGE);
    expect(missing.stderr).toContain('--data: no such folder');
    expect(badFlag.code).toBe(EXIT_USAGE);
    expect(badFlag.stderr).toContain("unknown option '--frobnicate'");
    expect(badLevel.code).toBe(EXIT_USAGE);
    expect(badLevel.stderr).toContain('SESSIONGRAPH_LOG_LEVEL');
  });
});

describe('sessiongraph --help', () => {
  const COMMANDS = ['serve', 'export', 'import', 'migrate', 'tail'];

  it('describes every command, every environment variable and the exit codes', async () => {
    const run = await sessiongraph(['--help']);
    expect(run.code).toBe(EXIT_OK);
    for (const command of COMMANDS) expect(run.stdout).toMatch(new RegExp(`^  ${command} .+`, 'm'));
    expect(run.stdout).toContain('Examples:');
    for (const variable of [
      'SESSIONGRAPH_DATA',
      'SESSIONGRAPH_BACKEND',
      'SESSIONGRAPH_METRICS',
      'SESSIONGRAPH_LOG_LEVEL',
    ]) {
      expect(run.stdout).toMatch(new RegExp(`^  ${variable} +--`, 'm'));
    }
    for (const { code, meaning } of EXIT_CODES) expect(run.stdout).toContain(`  ${code}  ${meaning}`);
  });

  it.each(COMMANDS)(
    '%s --help has a description, options with their variables, examples and exit codes',
    async (command) => {
      const run = await sessiongraph([command, '--help']);
      expect(run.code).toBe(EXIT_OK);
      expect(run.stdout).toMatch(new RegExp(`^Usage: sessiongraph ${command} `, 'm'));
      expect(run.stdout).toContain('Options:');
      expect(run.stdout).toContain('Examples:');
      expect(run.stdout).toContain('Exit codes:');
      for (const { code } of EXIT_CODES) expect(run.stdout).toMatch(new RegExp(`^  ${code}  `, 'm'));
      if (command !== 'tail') expect(run.stdout).toContain('env: SESSIONGRAPH_');
      if (command === 'serve') {
        for (const endpoint of ['/graphql', '/health', '/ready', '/metrics']) {
          expect(run.stdout).toContain(`  ${endpoint} `);
        }
        expect(run.stdout).toContain('--no-metrics');
        expect(run.stdout).toContain('env: SESSIONGRAPH_METRICS');
      }
    },
  );
});
