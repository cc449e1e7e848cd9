/**
 * Workspaces written the way zeroclaw writes them, byte for byte, without any of our code:
 * `sessions/<sanitised key>.jsonl` lines from serde_json, and a `sessions/sessions.db` created with
 * zeroclaw's seed DDL (4607f22933, verbatim) and filled with its own INSERT statements.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ZEROCLAW_SEED_DDL } from './sqlite-zeroclaw.js';

export interface ZeroclawMessage {
  role: string;
  content: string;
}

/** What the fixture sessions hold: a channel conversation with a tool turn, and a gateway chat. */
export const FIXTURE: Record<string, ZeroclawMessage[]> = {
  telegram_123456_alice: [
    { role: 'user', content: 'Can you check why the nightly deploy failed?' },
    {
      role: 'assistant',
      content:
        '{"content":null,"tool_calls":[{"arguments":"{\\"command\\":\\"tail deploy.log\\"}","id":"call_1","name":"shell"}]}',
    },
    { role: 'tool', content: '{"content":"error: disk full","tool_call_id":"call_1"}' },
    { role: 'assistant', content: 'The deploy failed because the disk is full — «répertoire» /var 😀' },
  ],
  gw_9f8e7d: [
    { role: 'user', content: 'hello from the gateway' },
    { role: 'assistant', content: 'Hi! How can I help?' },
  ],
};

/** `<workspace>/sessions/<key>.jsonl`: serde_json's compact `{"role":…,"content":…}` + `\n` per message. */
export function writeZeroclawJsonl(workspace: string): void {
  const dir = join(workspace, 'sessions');
  mkdirSync(dir, { recursive: true });
  for (const [key, messages] of Object.entries(FIXTURE)) {
    writeFileSync(join(dir, `${key}.jsonl`), messages.map((m) => `${JSON.stringify(m)}\n`).join(''));
  }
}

/**
 * `<workspace>/sessions/sessions.db` with the seed schema and zeroclaw's append SQL (two
 * autocommit statements per message), with chrono `to_rfc3339()` timestamps.
 * @returns the timestamp of each session's last message
 */
export function writeZeroclawSqlite(workspace: string, baseMs: number): Record<string, string> {
  const dir = join(workspace, 'sessions');
  mkdirSync(dir, { recursive: true });
  const db = new Database(join(dir, 'sessions.db'));
  const last: Record<string, string> = {};
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(ZEROCLAW_SEED_DDL);
    const insert = db.prepare(
      'INSERT INTO sessions (session_key, role, content, created_at) VALUES (?, ?, ?, ?)',
    );
    const upsert =
      db.prepare(`INSERT INTO session_metadata (session_key, created_at, last_activity, message_count)
       VALUES (?, ?, ?, 1)
       ON CONFLICT(session_key) DO UPDATE SET
          last_activity = excluded.last_activity,
          message_count = message_count + 1`);
    let ms = baseMs;
    for (const [key, messages] of Object.entries(FIXTURE)) {
      for (const m of messages) {
        ms += 1_000;
        const now = `${new Date(ms).toISOString().slice(0, 19)}.${String(ms % 1_000).padStart(3, '0')}456789+00:00`;
        insert.run(key, m.role, m.content, now);
        upsert.run(key, now, now);
        last[key] = now;
      }
    }
  } finally {
    db.close();
  }
  return last;
}
