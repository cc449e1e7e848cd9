/**
 * `sessiongraph tail` end to end: the real CLI in a child process against a real server, which is
 * stopped and started again on the same port while the tail runs.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openBackend } from '../../src/backends/open-backend.js';
import { type Json, startTestServer, type TestServer } from '../helpers/server.js';

const ROOT = new URL('../..', import.meta.url);

interface Tail {
  child: ChildProcess;
  lines: () => string[];
  stderr: () => string;
  waitForLines: (n: number, timeoutMs?: number) => Promise<string[]>;
  exited: Promise<number | null>;
}

function tail(args: string[]): Tail {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'tail', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout!.on('data', (d) => {
    stdout += d;
    for (const w of [...waiters]) w();
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const lines = () => stdout.split('\n').filter(Boolean);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    waitForLines: (n, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (lines().length < n) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(lines());
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`tail printed ${JSON.stringify(lines())}; stderr: ${stderr}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
  };
}

describe('sessiongraph tail', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  const append = (t: TestServer, key: string, content: string, role = 'user') =>
    t.gql(
      `mutation ($key: String!, $role: String!, $content: String!) {
        appendMessage(input: { sessionKey: $key, role: $role, content: $content }) { __typename } }`,
      { key, role, content },
    );

  it('prints recent and live messages once each, across a server restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sg-tail-'));
    cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
    let t = await startTestServer('sqlite', { dataDir });
    cleanup.push(() => t.close());
    const { port } = t.server;
    for (const content of ['old 1', 'old 2', 'old 3']) await append(t, 'gw_tail', content);

    const run = tail(['gw_tail', '--url', t.url, '--json', '--lines', '2']);
    cleanup.push(() => {
      if (run.child.exitCode === null) run.child.kill('SIGKILL');
    });
    await run.waitForLines(2);
    await append(t, 'gw_tail', 'live 1', 'assistant');
    await run.waitForLines(3);

    // the server goes away; messages are stored meanwhile (by another writer of the workspace)
    await t.close();
    const direct = await openBackend({ kind: 'sqlite', dataDir });
    await direct.append('gw_tail', [
      { role: 'user', content: 'while down 1' },
      { role: 'assistant', content: 'while down 2' },
    ]);
    await direct.close();
    t = await startTestServer('sqlite', { dataDir, port });
    await run.waitForLines(5);
    await append(t, 'gw_tail', 'live 2');
    const lines = (await run.waitForLines(6)).map((line) => JSON.parse(line) as Json);

    expect(lines.map((l) => l.content)).toEqual([
      'old 2',
      'old 3',
      'live 1',
      'while down 1',
      'while down 2',
      'live 2',
    ]);
    expect(lines.every((l) => l.event === 'MessageAppended' && l.sessionKey === 'gw_tail')).toBe(true);
    const seqs = lines.map((l) => l.seq as number);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(6);
    expect(run.stderr()).toContain('reconnecting');

    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
    expect(run.lines()).toHaveLength(6);
  });

  it('follows a session that does not exist yet from its first message, each once', async () => {
    const t = await startTestServer('sqlite');
    cleanup.push(() => t.close());
    const run = tail(['gw_tail_new', '--url', t.url, '--json']);
    cleanup.push(() => {
      if (run.child.exitCode === null) run.child.kill('SIGKILL');
    });
    // stored while tail starts, reads the (empty) session and subscribes: whichever of those steps
    // each message lands in, it is printed once, in order
    for (const content of ['one', 'two', 'three']) {
      await append(t, 'gw_tail_new', content);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    await run.waitForLines(3);
    await append(t, 'gw_tail_new', 'four');
    const lines = (await run.waitForLines(4)).map((line) => JSON.parse(line) as Json);
    expect(lines.map((l) => [l.seq, l.content])).toEqual([
      [1, 'one'],
      [2, 'two'],
      [3, 'three'],
      [4, 'four'],
    ]);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.lines()).toHaveLength(4);
  });

  it('resumes from --after, prints removals, and follows the session list with --all', async () => {
    const t = await startTestServer('jsonl');
    cleanup.push(() => t.close());
    const first =
      await t.gql(`mutation { appendMessage(input: { sessionKey: "gw_a", role: "user", content: "one" }) {
      ... on AppendMessagePayload { messageEdge { cursor } } } }`);
    await append(t, 'gw_a', 'two');
    const run = tail(['gw_a', '--url', t.url, '--after', first.data?.appendMessage.messageEdge.cursor]);
    const all = tail(['--all', '--url', t.url, '--json', '--channel', 'gw']);
    cleanup.push(() => {
      for (const r of [run, all]) if (r.child.exitCode === null) r.child.kill('SIGKILL');
    });
    expect(await run.waitForLines(1)).toEqual(['[2] user: two']);
    await t.gql('mutation { removeLastMessage(input: { sessionKey: "gw_a" }) { __typename } }');
    expect((await run.waitForLines(2))[1]).toBe('-- message 2 removed');

    // the list subscription is live once it reports something: create sessions until it does
    for (let i = 0; !all.lines().some((l) => l.includes('gw_new_')) && i < 100; i++) {
      await append(t, `gw_new_${i}`, 'hi');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // (the removal above may show first, as UPDATED, when it raced the subscription)
    const created = all
      .lines()
      .map((l) => JSON.parse(l) as Json)
      .find((e) => e.sessionKey.startsWith('gw_new_'));
    expect(created).toMatchObject({ event: 'CREATED', messageCount: 1 });
    await append(t, 'telegram_1', 'not followed');
    await t.gql('mutation { renameSession(input: { sessionKey: "gw_a", name: "Renamed" }) { __typename } }');
    await waitUntil(() => all.lines().some((l) => l.includes('"RENAMED"')));
    const renamed = all
      .lines()
      .map((l) => JSON.parse(l) as Json)
      .find((e) => e.event === 'RENAMED');
    expect(renamed).toMatchObject({ sessionKey: 'gw_a', name: 'Renamed', messageCount: 1 });
    expect(all.lines().some((l) => l.includes('telegram_1'))).toBe(false);

    for (const r of [run, all]) r.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(await all.exited).toBe(0);
  });

  it('refuses a session key together with --all, and a bad cursor', async () => {
    const t = await startTestServer('sqlite');
    cleanup.push(() => t.close());
    const both = tail(['k', '--all', '--url', t.url]);
    const bad = tail(['k', '--after', 'nope', '--url', t.url]);
    expect(await both.exited).toBe(2);
    expect(await bad.exited).toBe(1);
    expect(bad.stderr()).toContain('after is not a valid message cursor');
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
