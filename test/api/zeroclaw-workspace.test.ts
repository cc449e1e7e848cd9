import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FIXTURE, writeZeroclawJsonl, writeZeroclawSqlite } from '../helpers/api-zeroclaw-fixture.js';
import { type Json, startTestServer, type TestServer } from '../helpers/server.js';

const OVERVIEW = `{ sessions(orderBy: KEY_ASC) { edges { node { key channel messageCount estimatedTokens lastActivityAt
  lastMessage { role content }
  messages(first: 10) { edges { node { seq role content createdAt } } } } } } }`;

describe('a workspace zeroclaw wrote, served as it is', () => {
  const dirs: string[] = [];
  let t: TestServer | undefined;
  const workspace = () => {
    const dir = mkdtempSync(join(tmpdir(), 'sg-zeroclaw-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  function expectFixture(nodes: Json[]) {
    expect(nodes.map((n) => n.key)).toEqual(Object.keys(FIXTURE).sort());
    for (const node of nodes) {
      const stored = FIXTURE[node.key]!;
      expect(node.messages.edges.map((e: Json) => ({ role: e.node.role, content: e.node.content }))).toEqual(
        stored,
      );
      expect(node.messageCount).toBe(stored.length);
      expect(node.lastMessage).toEqual(stored.at(-1));
      const chars = stored.reduce((n, m) => n + [...m.content].length, 0);
      expect(node.estimatedTokens).toBe(Math.ceil(chars / 4));
    }
    expect(nodes.find((n) => n.key === 'telegram_123456_alice').channel).toBe('telegram');
  }

  it('JSONL: sessions/<key>.jsonl files', async () => {
    const dir = workspace();
    writeZeroclawJsonl(dir);
    const before = readFileSync(join(dir, 'sessions', 'gw_9f8e7d.jsonl'));
    t = await startTestServer('jsonl', { dataDir: dir });
    const { data, errors } = await t.gql(OVERVIEW);
    expect(errors).toBeUndefined();
    expectFixture(data?.sessions.edges.map((e: Json) => e.node));
    const hits = (
      await t.gql(
        '{ search(query: "\\"disk full\\"") { edges { node { snippet message { sessionKey role } } } } }',
      )
    ).data?.search.edges;
    expect(hits.map((e: Json) => e.node.message)).toEqual([
      { sessionKey: 'telegram_123456_alice', role: 'tool' },
    ]);
    expect(readFileSync(join(dir, 'sessions', 'gw_9f8e7d.jsonl'))).toEqual(before);
  });

  it('SQLite: sessions/sessions.db made with the seed schema', async () => {
    const dir = workspace();
    const last = writeZeroclawSqlite(dir, Date.parse('2026-03-24T21:51:41Z'));
    t = await startTestServer('sqlite', { dataDir: dir });
    const { data, errors } = await t.gql(OVERVIEW);
    expect(errors).toBeUndefined();
    const nodes = data?.sessions.edges.map((e: Json) => e.node);
    expectFixture(nodes);
    for (const node of nodes) {
      expect(node.lastActivityAt).toBe(last[node.key]);
      expect(node.messages.edges.at(-1).node.createdAt).toBe(last[node.key]);
    }
    const newest = (await t.gql('{ sessions(first: 1) { edges { node { key } } } }')).data?.sessions.edges;
    expect(newest[0].node.key).toBe('gw_9f8e7d');
    const hits = (await t.gql('{ search(query: "deploy") { edges { node { snippet message { role } } } } }'))
      .data?.search.edges;
    expect(hits.length).toBeGreaterThan(0);
    expect(hits[0].node.snippet).toContain('<mark>');
    const appended =
      await t.gql(`mutation { appendMessage(input: { sessionKey: "gw_9f8e7d", role: "user", content: "more" }) {
      ... on AppendMessagePayload { session { messageCount } } } }`);
    expect(appended.data?.appendMessage.session.messageCount).toBe(3);
  });
});
