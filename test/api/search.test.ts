import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgresBackend } from '../../src/backends/postgres/postgres-backend.js';
import { createLogger } from '../../src/logger.js';
import { startServer } from '../../src/server.js';
import { dropSchemas, TEST_DATABASE_URL, uniqueSchema } from '../helpers/postgres-database.js';
import { type Json, postGraphQL, startTestServer, type TestServer, testConfig } from '../helpers/server.js';

const SEARCH = `query ($query: String!, $first: Int, $after: String, $filter: SearchFilter, $orderBy: SearchOrder) {
  search(query: $query, first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    edges { cursor node { score snippet snippetText snippetMatches { start end }
      message { seq role content sessionKey session { key } } } }
    pageInfo { hasNextPage hasPreviousPage endCursor } } }`;

type Gql = (query: string, variables?: Record<string, unknown>) => Promise<Json>;

/**
 * The edges of the DateTime range as search bounds: the latest instant with sub-microsecond
 * digits (PostgreSQL's microsecond rounding carried it into year 10000 at 42b5b5a), the earliest,
 * and instants an offset moves outside UTC years 0000-9999, refused by the scalar on every
 * backend: BAD_USER_INPUT as a variable, GRAPHQL_VALIDATION_FAILED as a literal (where graphql-js
 * reports a scalar's refusal), with the scalar's message.
 */
async function expectTimeEdges(gql: Gql, timed: boolean): Promise<void> {
  const latest = '9999-12-31T23:59:59.9999999Z';
  const search = (filter: Record<string, string>) => gql(SEARCH, { query: 'deploy', filter });
  const count = async (filter: Record<string, string>) => {
    const r = await search(filter);
    expect(r.errors, JSON.stringify(filter)).toBeUndefined();
    return r.data.search.edges.length;
  };
  if (timed) {
    expect(await count({ until: latest })).toBe(2);
    expect(await count({ since: latest })).toBe(0);
    expect(await count({ since: '0000-01-01T00:00:00Z', until: latest })).toBe(2);
  } else {
    expect((await search({ until: latest })).errors?.[0]?.extensions).toMatchObject({ code: 'INVALID' });
  }
  for (const since of ['0000-01-01T00:30:00+01:00', '9999-12-31T23:59:59-00:01']) {
    const variable = await search({ since });
    expect(variable.errors?.[0]?.extensions, since).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(variable.errors?.[0]?.message).toMatch(/outside the supported range: UTC years 0000 to 9999/);
    const literal = await gql(
      `{ search(query: "deploy", filter: { since: "${since}" }) { edges { cursor } } }`,
    );
    expect(literal.errors?.[0]?.extensions, since).toMatchObject({ code: 'GRAPHQL_VALIDATION_FAILED' });
    expect(literal.errors?.[0]?.message).toMatch(/outside the supported range: UTC years 0000 to 9999/);
  }
}

describe('search over HTTP: postgres', () => {
  const schema = uniqueSchema('sg_api_search');
  const dataDir = mkdtempSync(join(tmpdir(), 'sg-api-postgres-'));
  let close: (() => Promise<void>) | undefined;
  let url: string;

  beforeAll(async () => {
    const backend = await openPostgresBackend({ databaseUrl: TEST_DATABASE_URL, schema, poolSize: 3 });
    await backend.append('telegram_1_alice', [
      { role: 'user', content: 'the deploy failed again' },
      { role: 'assistant', content: 'I will look at the deploy logs' },
    ]);
    const server = await startServer(
      testConfig('postgres', dataDir, { databaseUrl: TEST_DATABASE_URL, databaseSchema: schema }),
      { backend, logger: createLogger({ level: 'silent' }) },
    );
    url = server.url;
    close = async () => {
      await server.close();
      await backend.close();
    };
  });
  afterAll(async () => {
    await close?.();
    await dropSchemas([schema]);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('takes DateTime bounds at both ends of the range, and refuses one beyond it', async () => {
    await expectTimeEdges((query, variables) => postGraphQL(url, query, variables), true);
  });
});

describe.each(['sqlite', 'jsonl'] as const)('search over HTTP: %s', (kind) => {
  let t: TestServer;

  beforeAll(async () => {
    t = await startTestServer(kind);
    await t.backend.append('telegram_1_alice', [
      { role: 'user', content: 'the deploy failed again, deploy deploy' },
      { role: 'assistant', content: 'I will look at the <b>deploy</b> logs & "fix" it' },
      { role: 'user', content: 'unrelated chatter about lunch' },
    ]);
    await t.backend.append('slack_C1_bob', [
      { role: 'user', content: 'deployment succeeded after the fix' },
      { role: 'tool', content: '{"content":"exit code 0","tool_call_id":"call_1"}' },
    ]);
    for (let i = 0; i < 7; i++)
      await t.backend.append(`needles_${i % 3}`, [{ role: 'user', content: `needle number ${i}` }]);
  });
  afterAll(() => t?.close());

  const search = async (variables: Record<string, unknown>) => {
    const r = await t.gql(SEARCH, variables);
    return r.errors ? r : r.data?.search;
  };

  it('ranks hits by relevance', async () => {
    const { edges } = await search({ query: 'deploy' });
    expect(edges.map((e: Json) => e.node.message.content)).toEqual([
      'the deploy failed again, deploy deploy',
      'I will look at the <b>deploy</b> logs & "fix" it',
    ]);
    expect(edges[0].node.score).toBeGreaterThan(edges[1].node.score);
    expect(edges[0].node.message.session.key).toBe('telegram_1_alice');
  });

  it('marks matches in an HTML-safe snippet, with a plain variant and match ranges', async () => {
    const { edges } = await search({ query: 'deploy', orderBy: 'NEWEST' });
    const escaped = edges.find((e: Json) => e.node.message.role === 'assistant').node;
    expect(escaped.snippet).toContain('&lt;b&gt;<mark>deploy</mark>&lt;/b&gt;');
    expect(escaped.snippet).toContain('&amp; &quot;fix&quot;');
    expect(escaped.snippet).not.toMatch(/<b>/);
    expect(escaped.snippetText).toContain('<b>deploy</b> logs & "fix"');
    for (const node of edges.map((e: Json) => e.node)) {
      expect(node.snippetMatches.length).toBeGreaterThan(0);
      for (const { start, end } of node.snippetMatches)
        expect(node.snippetText.slice(start, end).toLowerCase()).toBe('deploy');
    }
  });

  it('gives every hit an excerpt of its own message, in both orders', async () => {
    for (const orderBy of ['RELEVANCE', 'NEWEST']) {
      const { edges } = await search({ query: 'deploy*', orderBy });
      expect(edges.length).toBeGreaterThan(1);
      for (const { node } of edges) {
        const excerpt = node.snippetText.replace(/^…|…$/g, '');
        expect(node.message.content, `${orderBy}: ${node.snippetText}`).toContain(excerpt);
      }
    }
  });

  it('speaks the query language and filters', async () => {
    const contents = async (variables: Record<string, unknown>) =>
      (await search(variables)).edges.map((e: Json) => e.node.message.content).sort();
    expect(await contents({ query: '"failed again"' })).toEqual(['the deploy failed again, deploy deploy']);
    expect(await contents({ query: '"again failed"' })).toEqual([]);
    expect(await contents({ query: 'deploy* -failed' })).toEqual([
      'I will look at the <b>deploy</b> logs & "fix" it',
      'deployment succeeded after the fix',
    ]);
    expect(await contents({ query: 'lunch OR succeeded' })).toEqual([
      'deployment succeeded after the fix',
      'unrelated chatter about lunch',
    ]);
    expect(await contents({ query: 'deploy*', filter: { sessionKey: 'slack_C1_bob' } })).toEqual([
      'deployment succeeded after the fix',
    ]);
    expect(
      await contents({ query: 'deploy*', filter: { keyPrefix: 'telegram_', role: 'assistant' } }),
    ).toEqual(['I will look at the <b>deploy</b> logs & "fix" it']);
    expect(await contents({ query: 'telegram' })).toEqual([]);
    expect(await contents({ query: '' })).toEqual([]);
    for (const query of ['"', 'NEAR(', 'a"b', '(deploy', 'content:deploy', '*', '\\']) {
      const r = await search({ query });
      expect(r.errors, query).toBeUndefined();
    }
  });

  it('filters by message time where the backend records it', async () => {
    const r = await search({ query: 'deploy', filter: { since: '2000-01-01T00:00:00Z' } });
    if (kind === 'sqlite') {
      expect(r.edges).toHaveLength(2);
      expect(
        (await search({ query: 'deploy', filter: { until: '2000-01-01T00:00:00+02:00' } })).edges,
      ).toEqual([]);
    } else {
      expect(r.errors?.[0]?.extensions).toMatchObject({ code: 'INVALID' });
    }
  });

  it('takes DateTime bounds at both ends of the range, and refuses one beyond it', async () => {
    await expectTimeEdges(t.gql, kind === 'sqlite');
  });

  it('pages hits forward with cursors, without repeats, in both orders', async () => {
    for (const orderBy of ['RELEVANCE', 'NEWEST']) {
      const seen: string[] = [];
      let after: string | undefined;
      for (let i = 0; i < 10; i++) {
        const page = await search({ query: 'needle', first: 3, after, orderBy });
        seen.push(...page.edges.map((e: Json) => e.node.message.content));
        expect(page.pageInfo.hasPreviousPage).toBe(after !== undefined);
        if (!page.pageInfo.hasNextPage) break;
        after = page.pageInfo.endCursor;
      }
      expect(seen.sort()).toEqual(Array.from({ length: 7 }, (_, i) => `needle number ${i}`).sort());
    }
    const newest = await search({ query: 'needle', orderBy: 'NEWEST', filter: { sessionKey: 'needles_0' } });
    expect(newest.edges.map((e: Json) => e.node.message.content)).toEqual([
      'needle number 6',
      'needle number 3',
      'needle number 0',
    ]);
  });

  it('refuses a cursor of another search: another query, filter or order', async () => {
    const first = await search({ query: 'needle', first: 2 });
    const cursor = first.pageInfo.endCursor;
    expect((await search({ query: 'needle', first: 2, after: cursor })).edges).toHaveLength(2);
    for (const other of [
      { query: 'number', first: 2, after: cursor },
      { query: 'needle', first: 2, after: cursor, orderBy: 'NEWEST' },
      { query: 'needle', first: 2, after: cursor, filter: { sessionKey: 'needles_0' } },
      { query: 'needle', first: 2, after: cursor, filter: { keyPrefix: 'needles_' } },
      { query: 'needle', first: 2, after: cursor, filter: { role: 'user' } },
    ]) {
      expect((await search(other)).errors?.[0]?.extensions, JSON.stringify(other)).toMatchObject({
        code: 'INVALID',
        field: 'after',
      });
    }
  });

  it('answers bad input with typed GraphQL errors', async () => {
    expect((await search({ query: 'needle', after: 'not-a-cursor' })).errors?.[0]?.extensions).toMatchObject({
      code: 'INVALID',
    });
    expect((await search({ query: '-deploy' })).errors?.[0]?.extensions).toMatchObject({ code: 'INVALID' });
    const long = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
    expect((await search({ query: long })).errors?.[0]?.extensions).toMatchObject({ code: 'TOO_LARGE' });
  });
});
