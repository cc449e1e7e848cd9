/**
 * A key-prefix token against JSONL's lossy file names, through a real server and a real zeroclaw
 * writer process (test/helpers/zeroclaw-writer.ts), and the same scenarios on SQLite and
 * PostgreSQL, which keep raw keys and must stay clean:
 * (a) a token confined to `tenantA_` writing `tenantA_payroll-2025`, whose file an admin's
 *     `tenantA:payroll-2025` owns, gets a KeyCollisionError that names no key outside its prefix,
 *     in no field and not in its message;
 * (b) a token confined to `alice.corp_` may not create `alice.corp_2` (its file is also zeroclaw's
 *     session `alice_corp_2`, outside the prefix), and when such a file exists (an admin made it,
 *     zeroclaw appended to it) the token sees nothing of it: session, listing, search, live feed.
 * One step beside: a token whose prefix covers both keys sees the owner and the lines.
 */

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTokenSpecs } from '../../src/auth/token-spec.js';
import type { BackendKind } from '../../src/backends/open-backend.js';
import { authHeaders } from '../helpers/auth-clients.js';
import { openWsClient, subscribeSse } from '../helpers/live-client.js';
import { type KindServer, serveKind } from '../helpers/serve-kind.js';
import type { Json } from '../helpers/server.js';
import { spawnZeroclawWriter } from '../helpers/zeroclaw-writer.js';

const ADMIN = 'admin-secret-key-collisions-1';
const TENANT = 'tenant-secret-key-collisions-1';
const ALICE = 'alice-secret-key-collisions-1';
const BROAD = 'broad-secret-key-collisions-1';
const TOKENS = parseTokenSpecs([
  `ops:${ADMIN}:admin`,
  `tenant:${TENANT}:read,write:tenantA_`,
  `alice:${ALICE}:read,write:alice.corp_`,
  `broad:${BROAD}:read,write:alice`,
]);

const RESULT = `__typename ... on Error { code message }
  ... on KeyCollisionError { sessionKey existingKey } ... on ForbiddenError { code }`;
const APPEND = `mutation ($key: String!, $content: String!) {
  appendMessage(input: { sessionKey: $key, role: "user", content: $content }) { ${RESULT} } }`;
const RENAME = `mutation ($key: String!) { renameSession(input: { sessionKey: $key, name: "n" }) { ${RESULT} } }`;
const REMOVE_LAST = `mutation ($key: String!) { removeLastMessage(input: { sessionKey: $key }) { ${RESULT} } }`;
const READ = `query ($key: String!) {
  session(key: $key) { key messages(first: 50) { edges { node { content } } } }
  sessions(first: 50) { edges { node { key lastMessage { content } } } }
  search(query: "secret", first: 50) { edges { node { message { sessionKey content } } } } }`;
const EVENTS = `subscription ($key: String!) {
  sessionEvents(sessionKey: $key, fromStart: true) { __typename ... on MessageAppended { message { content } } } }`;

async function gql(
  url: string,
  token: string,
  query: string,
  variables: Record<string, unknown>,
): Promise<Json> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...authHeaders(token) },
    body: JSON.stringify({ query, variables }),
  });
  expect(response.status).toBe(200);
  return response.json();
}

const contentsOf = (session: Json) =>
  session?.messages.edges.map((e: Json) => e.node.content as string) as string[] | undefined;

describe('JSONL: a key-prefix token and lossy file names', () => {
  let s: KindServer;
  beforeAll(async () => {
    s = await serveKind('jsonl', { tokens: TOKENS });
  });
  afterAll(() => s.close());
  const fileOf = (stem: string) => join(s.dataDir, 'sessions', `${stem}.jsonl`);

  it('(a) names no key outside the prefix in a KeyCollisionError, in no field and no message', async () => {
    const owned = await gql(s.url, ADMIN, APPEND, { key: 'tenantA:payroll-2025', content: 'salary table' });
    expect(owned.data.appendMessage.__typename).toBe('AppendMessagePayload');
    const before = readFileSync(fileOf('tenantA_payroll-2025'));

    for (const [query, field] of [
      [APPEND, 'appendMessage'],
      [RENAME, 'renameSession'],
    ] as const) {
      const body = await gql(s.url, TENANT, query, { key: 'tenantA_payroll-2025', content: 'x' });
      expect(body.data[field]).toMatchObject({
        __typename: 'KeyCollisionError',
        code: 'KEY_COLLISION',
        sessionKey: 'tenantA_payroll-2025',
        existingKey: null,
      });
      expect(JSON.stringify(body)).not.toContain('tenantA:payroll');
      expect(body.data[field].message).not.toMatch(/payroll|tenantA/);
    }
    // the same over graphql-ws
    const ws = openWsClient(s.url, { token: TENANT });
    try {
      const op = ws.subscribe(APPEND, { key: 'tenantA_payroll-2025', content: 'x' });
      await op.ended;
      expect(op.results[0]?.data?.appendMessage).toMatchObject({
        __typename: 'KeyCollisionError',
        existingKey: null,
      });
      expect(JSON.stringify(op.results)).not.toContain('tenantA:payroll');
    } finally {
      await ws.close();
    }
    // a removal finds no session of its own there, and says only that
    const removal = await gql(s.url, TENANT, REMOVE_LAST, { key: 'tenantA_payroll-2025' });
    expect(JSON.stringify(removal)).not.toContain('tenantA:payroll');
    expect(readFileSync(fileOf('tenantA_payroll-2025'))).toEqual(before);

    // one step beside: the admin, who may see the owner, is told who it is
    const admin = await gql(s.url, ADMIN, APPEND, { key: 'tenantA_payroll-2025', content: 'x' });
    expect(admin.data.appendMessage).toMatchObject({ existingKey: 'tenantA:payroll-2025' });
  });

  it('(b) refuses a prefix token a key whose file name lies outside its prefix, and stores nothing', async () => {
    const body = await gql(s.url, ALICE, APPEND, { key: 'alice.corp_2', content: 'mine' });
    expect(body.data.appendMessage).toMatchObject({ __typename: 'ForbiddenError', code: 'FORBIDDEN' });
    expect(existsSync(fileOf('alice_corp_2'))).toBe(false);
  });

  it('(b) shows a prefix token nothing of a file zeroclaw wrote into under its stem, while a broader token sees it', async () => {
    // the file as the issue left it: made under `alice.corp_2` (here by an admin), then zeroclaw
    // appending its own session `alice_corp_2` to it
    const made = await gql(s.url, ADMIN, APPEND, { key: 'alice.corp_2', content: 'made as alice.corp_2' });
    expect(made.data.appendMessage.__typename).toBe('AppendMessagePayload');
    const zeroclaw = await spawnZeroclawWriter('jsonl', s.dataDir);
    try {
      await zeroclaw.run({ op: 'append', key: 'alice_corp_2', role: 'user', content: 'zeroclaw secret' });
    } finally {
      await zeroclaw.close();
    }
    expect(readFileSync(fileOf('alice_corp_2'), 'utf8')).toContain('zeroclaw secret');

    const read = await gql(s.url, ALICE, READ, { key: 'alice.corp_2' });
    expect(read.data.session).toBeNull();
    expect(read.data.sessions.edges).toEqual([]);
    expect(read.data.search.edges).toEqual([]);
    expect(JSON.stringify(read)).not.toContain('secret');
    const events = subscribeSse(s.url, EVENTS, { key: 'alice.corp_2' }, { token: ALICE });
    await events.waitFor((sub) => sub.results.length > 0);
    expect(events.results[0]!.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN' });
    expect(JSON.stringify(events.results)).not.toContain('secret');
    events.stop();

    // one step beside: `alice` covers both `alice.corp_2` and zeroclaw's `alice_corp_2`
    const broad = await gql(s.url, BROAD, READ, { key: 'alice.corp_2' });
    expect(contentsOf(broad.data.session)).toEqual(['made as alice.corp_2', 'zeroclaw secret']);
  });
});

describe.each(['sqlite', 'postgres'] as BackendKind[])(
  '%s keeps raw keys: the same scenarios are clean',
  (kind) => {
    let s: KindServer;
    beforeAll(async () => {
      s = await serveKind(kind, { tokens: TOKENS });
    });
    afterAll(() => s.close());

    it('(a) gives the prefix token its own session, beside the admin one, and names neither', async () => {
      await gql(s.url, ADMIN, APPEND, { key: 'tenantA:payroll-2025', content: 'salary table' });
      const body = await gql(s.url, TENANT, APPEND, { key: 'tenantA_payroll-2025', content: 'own' });
      expect(body.data.appendMessage.__typename).toBe('AppendMessagePayload');
      const read = await gql(s.url, TENANT, READ, { key: 'tenantA_payroll-2025' });
      expect(contentsOf(read.data.session)).toEqual(['own']);
      expect(JSON.stringify(read)).not.toMatch(/tenantA:payroll|salary/);
    });

    it('(b) shows the prefix token only what was written under its own key', async () => {
      const body = await gql(s.url, ALICE, APPEND, { key: 'alice.corp_2', content: 'mine' });
      expect(body.data.appendMessage.__typename).toBe('AppendMessagePayload');
      if (kind === 'sqlite') {
        // zeroclaw's own write path on its SQLite store
        const zeroclaw = await spawnZeroclawWriter('sqlite', s.dataDir);
        try {
          await zeroclaw.run({ op: 'append', key: 'alice_corp_2', role: 'user', content: 'zeroclaw secret' });
        } finally {
          await zeroclaw.close();
        }
      } else {
        await gql(s.url, ADMIN, APPEND, { key: 'alice_corp_2', content: 'zeroclaw secret' });
      }
      const read = await gql(s.url, ALICE, READ, { key: 'alice.corp_2' });
      expect(contentsOf(read.data.session)).toEqual(['mine']);
      expect(read.data.sessions.edges.map((e: Json) => e.node.key)).toEqual(['alice.corp_2']);
      expect(JSON.stringify(read)).not.toContain('secret');
    });
  },
);
