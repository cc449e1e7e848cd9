/**
 * A second OS process that writes a store directly, the way a zeroclaw agent does, for the
 * external-write tests and bench: `node --import tsx zeroclaw-writer.ts <sqlite|jsonl> <dataDir>`.
 *
 * It reads one JSON command per line on stdin and answers one JSON line per command on stdout:
 * `{"at": <epoch ms>}`, the moment its write returned (performance.timeOrigin + now, comparable
 * across processes), or `{"error": "..."}`.
 * - SQLite: zeroclaw's exact statements, each in autocommit (sqlite-zeroclaw.ts and the reference
 *   notes 4.5): append (insert + metadata upsert), remove_last, update_last (HEAD), delete_session,
 *   set_session_name.
 * - JSONL: `<key>.jsonl` (keys are given already sanitised): append is one appendFileSync of a serde
 *   line; remove_last and update_last load the file and rewrite it as zeroclaw HEAD does (temp file
 *   in the folder, fsync, rename); delete unlinks it.
 * `pauseMs` sleeps between the statements (or between an appended line's JSON and its `\n`), to
 * land a watcher's look halfway through a write.
 */

import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { serdeLine, zeroclawLoad } from './jsonl-zeroclaw.js';
import { chronoTimestamp, zeroclawAppend, zeroclawPragmas, zeroclawSetName } from './sqlite-zeroclaw.js';

export type WriterCommand =
  | { op: 'append'; key: string; role: string; content: string; pauseMs?: number }
  | { op: 'removeLast'; key: string; pauseMs?: number }
  | { op: 'updateLast'; key: string; role: string; content: string; pauseMs?: number }
  | { op: 'delete'; key: string; pauseMs?: number }
  | { op: 'setName'; key: string; name: string };

export interface ZeroclawWriter {
  /** Runs one command; resolves with the epoch time (ms, fractional) its write returned. */
  run(command: WriterCommand): Promise<number>;
  close(): Promise<void>;
}

const SCRIPT = fileURLToPath(import.meta.url);

/** Epoch milliseconds with sub-millisecond precision, comparable between processes. */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

export async function spawnZeroclawWriter(
  kind: 'sqlite' | 'jsonl',
  dataDir: string,
): Promise<ZeroclawWriter> {
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    ['--import', 'tsx', SCRIPT, kind, dataDir],
    { stdio: 'pipe' },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const lines = createInterface({ input: child.stdout });
  const waiting: Array<(line: string) => void> = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  const next = () =>
    new Promise<string>((resolve, reject) => {
      const onExit = () => reject(new Error(`zeroclaw writer exited: ${stderr}`));
      child.once('exit', onExit);
      waiting.push((line) => {
        child.off('exit', onExit);
        resolve(line);
      });
    });
  const ready = await next();
  if (ready !== 'ready') throw new Error(`zeroclaw writer did not start: ${ready} ${stderr}`);
  let queue: Promise<unknown> = Promise.resolve();
  return {
    run(command) {
      const result = queue.then(async () => {
        const answer = next();
        child.stdin.write(`${JSON.stringify(command)}\n`);
        const reply = JSON.parse(await answer) as { at?: number; error?: string };
        if (reply.at === undefined) throw new Error(`zeroclaw writer: ${reply.error}`);
        return reply.at;
      });
      queue = result.catch(() => {});
      return result;
    },
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin.end();
      await exited;
    },
  };
}

// ---- the child ------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Store {
  apply(command: WriterCommand): Promise<void>;
  close(): void;
}

function sqliteStore(dataDir: string): Store {
  const db = new Database(join(dataDir, 'sessions', 'sessions.db'));
  zeroclawPragmas(db);
  db.pragma('busy_timeout = 5000'); // rusqlite's default
  const lastId = (key: string) =>
    db
      .prepare('SELECT id FROM sessions WHERE session_key = ?1 ORDER BY id DESC LIMIT 1')
      .pluck()
      .get({ 1: key }) as number | undefined;
  return {
    async apply(command) {
      const now = () => chronoTimestamp(Date.now());
      const pause = 'pauseMs' in command ? (command.pauseMs ?? 0) : 0;
      switch (command.op) {
        case 'append':
          if (pause === 0) return zeroclawAppend(db, command.key, command.role, command.content, now());
          db.prepare(
            'INSERT INTO sessions (session_key, role, content, created_at) VALUES (?1, ?2, ?3, ?4)',
          ).run({
            1: command.key,
            2: command.role,
            3: command.content,
            4: now(),
          });
          await sleep(pause);
          db.prepare(
            `INSERT INTO session_metadata (session_key, created_at, last_activity, message_count)
               VALUES (?1, ?2, ?3, 1)
               ON CONFLICT(session_key) DO UPDATE SET
                  last_activity = excluded.last_activity,
                  message_count = message_count + 1`,
          ).run({ 1: command.key, 2: now(), 3: now() });
          return;
        case 'removeLast': {
          const id = lastId(command.key);
          if (id === undefined) return;
          db.prepare('DELETE FROM sessions WHERE id = ?1').run({ 1: id });
          await sleep(pause);
          db.prepare(
            'UPDATE session_metadata SET message_count = MAX(0, message_count - 1) WHERE session_key = ?1',
          ).run({ 1: command.key });
          return;
        }
        case 'updateLast': {
          const id = lastId(command.key);
          if (id === undefined) return;
          db.prepare('UPDATE sessions SET role = ?1, content = ?2 WHERE id = ?3').run({
            1: command.role,
            2: command.content,
            3: id,
          });
          await sleep(pause);
          db.prepare('UPDATE session_metadata SET last_activity = ?1 WHERE session_key = ?2').run({
            1: now(),
            2: command.key,
          });
          return;
        }
        case 'delete': {
          const known = db
            .prepare('SELECT COUNT(*) > 0 FROM session_metadata WHERE session_key = ?1')
            .pluck()
            .get({ 1: command.key });
          if (!known) return;
          db.prepare('DELETE FROM sessions WHERE session_key = ?1').run({ 1: command.key });
          await sleep(pause);
          db.prepare('DELETE FROM session_metadata WHERE session_key = ?1').run({ 1: command.key });
          return;
        }
        case 'setName':
          return zeroclawSetName(db, command.key, command.name);
      }
    },
    close: () => db.close(),
  };
}

function jsonlStore(dataDir: string): Store {
  const dir = join(dataDir, 'sessions');
  const fileOf = (key: string) => join(dir, `${key}.jsonl`);
  let temps = 0;
  /** zeroclaw HEAD's rewrite: NamedTempFile in the sessions folder, write, sync_all, persist (rename). */
  const rewrite = (key: string, messages: Array<{ role: string; content: string }>) => {
    const temp = join(dir, `.tmp${process.pid}x${temps++}`);
    const fd = openSync(temp, 'w');
    try {
      for (const m of messages) writeSync(fd, serdeLine(m));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, fileOf(key));
  };
  /** zeroclaw's `load`: a file it cannot open (none yet, or deleted) is an empty session, not an error. */
  const load = (key: string) => {
    let bytes: Buffer;
    try {
      bytes = readFileSync(fileOf(key));
    } catch {
      return [];
    }
    return zeroclawLoad(bytes);
  };
  return {
    async apply(command) {
      switch (command.op) {
        case 'append': {
          const line = serdeLine(command);
          if (!command.pauseMs) return appendFileSync(fileOf(command.key), line);
          appendFileSync(fileOf(command.key), line.slice(0, -1));
          await sleep(command.pauseMs);
          return appendFileSync(fileOf(command.key), '\n');
        }
        case 'removeLast': {
          const messages = load(command.key);
          if (messages.pop()) rewrite(command.key, messages);
          return;
        }
        case 'updateLast': {
          const messages = load(command.key);
          if (messages.length === 0) return;
          messages[messages.length - 1] = { role: command.role, content: command.content };
          return rewrite(command.key, messages);
        }
        case 'delete':
          // `path.exists()`, then `remove_file`: a session with no file is not deleted, not an error
          if (!existsSync(fileOf(command.key))) return;
          return unlinkSync(fileOf(command.key));
        case 'setName':
          return; // a no-op on zeroclaw's JSONL store
      }
    },
    close: () => {},
  };
}

async function main(): Promise<void> {
  const [kind, dataDir] = process.argv.slice(2) as ['sqlite' | 'jsonl', string];
  const store = kind === 'sqlite' ? sqliteStore(dataDir) : jsonlStore(dataDir);
  process.stdout.write('ready\n');
  for await (const line of createInterface({ input: process.stdin })) {
    try {
      await store.apply(JSON.parse(line) as WriterCommand);
      process.stdout.write(`${JSON.stringify({ at: epochNow() })}\n`);
    } catch (error) {
      process.stdout.write(`${JSON.stringify({ error: String(error) })}\n`);
    }
  }
  store.close();
}

if (process.argv[1]?.endsWith('zeroclaw-writer.ts')) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
