/**
 * The hostile-input suite: thousands of generated attacks (seeded, so a failure replays) and a
 * handwritten nasty list, against a real server on SQLite and on JSONL, over HTTP, server-sent
 * events and graphql-ws. For every response: no 5xx, no masked unexpected error, every error typed
 * (`extensions.code`), and no stack trace, SQL or file path in the body (text the attack itself
 * sent and the server echoes back does not count). After each phase the server still answers.
 *
 * The store afterwards: phase 1 sends only reads and writes that must be refused, and every file
 * of the workspace is byte-identical after it (SQLite's `-shm` aside: it is the WAL index in shared
 * memory, which readers update by design; the database and its WAL are compared). Phase 2 sends
 * writes with hostile but legal keys and content; its check is logical, because a SQLite write
 * rewrites pages: the store holds exactly the seed plus the writes the server reported as done,
 * every seed file outside them (JSONL) is byte-identical, and nothing appears or changes
 * outside the store's own files (a key like `../../x` must not reach a path).
 */

import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { BackendKind } from '../../src/backends/open-backend.js';
import { type LiveResult, openWsClient, type WsClient, wsUrlOf } from '../helpers/live-client.js';
import { prng } from '../helpers/prng.js';
import { type Json, startTestServer, type TestServer } from '../helpers/server.js';
import {
  APPEND,
  APPEND_MANY,
  anyValue,
  DESTRUCTIVE_DOCUMENTS,
  FTS_SPECIALS,
  hostileDocument,
  hostileSearch,
  illegalKey,
  int,
  legalKey,
  nastyBodies,
  pick,
  READ_DOCUMENTS,
  REMOVE_LAST,
  RENAME,
  type Rng,
} from './hostile-generators.js';

const SEED = 0x5e55_1011;
const MAX_CONTENT_BYTES = 4_096;
/** The server's default request body limit. */
const MAX_BODY_BYTES = 4_194_304;
const CONCURRENCY = 8;

/** The codes a refusal may carry; anything else (or none) is a finding. */
const TYPED_CODES = new Set([
  'INVALID',
  'TOO_LARGE',
  'NOT_FOUND',
  'CONFLICT',
  'KEY_COLLISION',
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_USER_INPUT',
  'BAD_REQUEST',
  'QUERY_TOO_DEEP',
  'QUERY_TOO_COMPLEX',
  'TOO_MANY_ALIASES',
  'TOO_MANY_TOKENS',
  'TOO_MANY_DIRECTIVES',
  'BODY_TOO_LARGE',
  'INVALID_UTF8',
  'UNSUPPORTED_MEDIA_TYPE',
  // the request gate's (src/transport/request-gate.ts): a method the endpoint does not take
  'METHOD_NOT_ALLOWED',
  'OPERATION_RESOLUTION_FAILURE',
  'TOO_MANY_VARIABLE_VALUES',
]);

/** Seed sessions whose content is full of search syntax; their keys no generated key can equal. */
const SEED_SESSIONS: Record<string, string[]> = {
  alpha: ['hello world', 'he said "NEAR(deploy failed)" * ^ : -x +y {a} OR NOT AND', 'bye'],
  'team-beta': ['deploy failed at 03:00', 'ünïcödé 日本語 🙂'],
  gamma7: ['content: session_key: rank bm25 \\ / ( ) [ ] <-> & | !'],
};

interface Finding {
  where: string;
  request: string;
  problem: string;
  response: string;
}

/** Leak markers: what a response must never contain unless the request itself sent it. */
function leakPatterns(paths: string[]): RegExp[] {
  const escaped = paths.map((p) => new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  return [
    /\bat [\w$.<>]+ \(/,
    /\n\s+at /,
    /node:internal/,
    /node_modules/,
    /\.[cm]?[jt]s:\d+/,
    /SqliteError|SQLITE_[A-Z]+/,
    /no such (table|column|function)/i,
    /near "[^"]*": syntax error/,
    /fts5/i,
    /\b(SELECT|INSERT INTO|UPDATE|DELETE FROM)\b[^"]*\b(FROM|VALUES|SET|WHERE)\b/,
    /\bsessions\.db\b/,
    /\b(EACCES|ENOENT|EISDIR|ENOTDIR|ENAMETOOLONG|EEXIST|EPERM|EMFILE)\b/,
    /originalError/,
    /"stack"/,
    ...escaped,
  ];
}

function jsonEscaped(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

class Inspector {
  readonly findings: Finding[] = [];
  readonly codes = new Map<string, number>();
  cases = 0;

  constructor(private readonly leaks: RegExp[]) {}

  /** Checks one response; `sent` is everything the request carried (echoes of it are allowed). */
  inspect(where: string, sent: string, status: number, text: string): void {
    this.cases++;
    const finding = (problem: string) =>
      this.findings.push({ where, request: sent.slice(0, 300), problem, response: text.slice(0, 600) });
    if (status >= 500) finding(`HTTP ${status}`);
    // an echo of the request is fine; a response that outgrows it is an amplifier
    if (text.length > 2 * sent.length + 100_000)
      finding(`a ${text.length}-character response to ${sent.length}`);
    for (const pattern of this.leaks) {
      const match = pattern.exec(text);
      if (match && !sent.includes(match[0]) && !jsonEscaped(sent).includes(match[0])) {
        finding(`leaks ${JSON.stringify(match[0])}`);
      }
    }
    let body: Json;
    try {
      body = JSON.parse(text);
    } catch {
      finding('not JSON');
      return;
    }
    this.inspectResult(where, sent, body, finding);
  }

  inspectResult(_where: string, _sent: string, body: Json, finding: (problem: string) => void): void {
    const results: Json[] = Array.isArray(body) ? body : [body];
    for (const result of results) {
      for (const error of result?.errors ?? []) {
        const code = error?.extensions?.code;
        this.codes.set(String(code), (this.codes.get(String(code)) ?? 0) + 1);
        if (!TYPED_CODES.has(code))
          finding(`error without a typed code: ${JSON.stringify(error).slice(0, 300)}`);
      }
    }
  }

  /** A live result or the errors that ended a live operation. */
  inspectLive(where: string, sent: string, payload: unknown): void {
    this.cases++;
    const text = JSON.stringify(payload) ?? '';
    const finding = (problem: string) =>
      this.findings.push({ where, request: sent.slice(0, 300), problem, response: text.slice(0, 600) });
    for (const pattern of this.leaks) {
      const match = pattern.exec(text);
      if (match && !sent.includes(match[0]) && !jsonEscaped(sent).includes(match[0])) {
        finding(`leaks ${JSON.stringify(match[0])}`);
      }
    }
    const body = Array.isArray(payload) ? { errors: payload } : payload;
    this.inspectResult(where, sent, body, finding);
  }
}

/** Runs tasks `CONCURRENCY` at a time. */
async function pool<T>(items: readonly T[], run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await run(item);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

/** Every file under `root`, by path relative to it, with its SHA-256. */
function snapshot(root: string, skip: (path: string) => boolean = () => false): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (!skip(path)) {
        files.set(relative(root, path), createHash('sha256').update(readFileSync(path)).digest('hex'));
      }
    }
  };
  walk(root);
  return files;
}

const isShm = (path: string) => path.endsWith('-shm');

/** Stack frames and internals in any WebSocket frame. */
const LEAKS_IN_FRAMES = [/\n\s+at /, /node_modules/, /SqliteError/];

function liveSettled(sub: { results: LiveResult[]; ended: Promise<void> }): Promise<unknown> {
  return sub.ended.then(
    () => ({ data: sub.results.map((r) => r.data), errors: sub.results.flatMap((r) => r.errors ?? []) }),
    (errors: unknown) => (Array.isArray(errors) ? errors : { transportError: String(errors) }),
  );
}

function readVariables(r: Rng): Record<string, unknown> {
  const key = () => {
    const roll = r();
    if (roll < 0.45) return legalKey(r);
    if (roll < 0.75) return illegalKey(r).key;
    if (roll < 0.85) return pick(r, Object.keys(SEED_SESSIONS));
    return anyValue(r);
  };
  const cursor = () =>
    pick(r, [
      undefined,
      null,
      '',
      'nope',
      'AAAA',
      Buffer.from(legalKey(r, 80)).toString('base64'),
      Buffer.from(`{"k":"${legalKey(r, 40)}","s":-1}`).toString('base64url'),
      anyValue(r),
    ]);
  return {
    k: key(),
    p: r() < 0.5 ? legalKey(r, 100) : anyValue(r),
    r: r() < 0.7 ? pick(r, ['user', 'assistant', '', '\u0000', 'x'.repeat(300)]) : anyValue(r),
    q:
      r() < 0.75
        ? hostileSearch(r)
        : pick(r, [anyValue(r), 'x'.repeat(int(r, 1_025, 50_000)), '-x', '-"a b"', '""', '*', 'OR']),
    n: r() < 0.6 ? pick(r, [0, 1, 5, 50, 1_000, 1_001, -1, 2 ** 31, 1e9]) : anyValue(r),
    a: cursor(),
    id: pick(r, [
      legalKey(r, 60),
      Buffer.from(`Session:${legalKey(r, 60)}`).toString('base64'),
      Buffer.from(`Message:${legalKey(r, 30)}:${int(r, -5, 99)}`).toString('base64'),
      Buffer.from('Nope:1').toString('base64'),
      anyValue(r),
    ]),
  };
}

describe.each(['sqlite', 'jsonl'] as BackendKind[])('hostile input on %s', (kind) => {
  let root: string;
  let t: TestServer;
  let ws: WsClient;
  let inspector: Inspector;
  const rng = prng(SEED + (kind === 'sqlite' ? 0 : 1));

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), `sg-hostile-${kind}-`));
    const dataDir = join(root, 'workspace');
    mkdirSync(dataDir);
    writeFileSync(join(root, 'canary.txt'), 'outside the workspace');
    writeFileSync(join(dataDir, 'canary.txt'), 'inside the workspace, outside sessions/');
    t = await startTestServer(kind, { dataDir, limits: { maxContentBytes: MAX_CONTENT_BYTES } });
    for (const [key, contents] of Object.entries(SEED_SESSIONS)) {
      await t.backend.append(
        key,
        contents.map((content) => ({ role: 'user', content })),
      );
    }
    await t.backend.renameSession('alpha', 'the "alpha" session');
    ws = openWsClient(t.url);
    inspector = new Inspector(leakPatterns([root, tmpdir(), process.cwd(), homedir()]));
  });

  afterAll(async () => {
    await ws?.close();
    await t?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  async function post(
    body: string | Uint8Array,
    contentType: string | null,
    method = 'POST',
    accept?: string,
  ) {
    const headers: Record<string, string> = {};
    if (contentType !== null) headers['content-type'] = contentType;
    if (accept) headers.accept = accept;
    const response = await fetch(t.url, { method, headers, body: body as BodyInit });
    return { status: response.status, text: await response.text() };
  }

  async function http(where: string, query: string, variables?: Record<string, unknown>) {
    const body = JSON.stringify({ query, variables });
    const { status, text } = await post(body, 'application/json');
    inspector.inspect(where, body, status, text);
    return text;
  }

  /** Server-sent events: each `data:` line is a result; the stream must end on its own. */
  async function sse(where: string, query: string, variables?: Record<string, unknown>) {
    const body = JSON.stringify({ query, variables });
    const { status, text } = await post(body, 'application/json', 'POST', 'text/event-stream');
    if (status >= 400) {
      inspector.inspect(where, body, status, text);
      return;
    }
    const data = text
      .split('\n')
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).trim())
      .filter((line) => line.length > 0);
    for (const chunk of data) inspector.inspect(where, body, status, chunk);
    if (data.length === 0) inspector.inspect(where, body, status, text);
  }

  async function overWs(where: string, query: string, variables?: Record<string, unknown>) {
    const sent = JSON.stringify({ query, variables });
    const settled = await liveSettled(ws.subscribe(query, variables));
    if (settled && typeof settled === 'object' && 'transportError' in settled) {
      inspector.findings.push({
        where,
        request: sent.slice(0, 300),
        problem: 'socket failed',
        response: JSON.stringify(settled),
      });
      ws = openWsClient(t.url);
      return;
    }
    inspector.inspectLive(where, sent, settled);
  }

  async function stillAnswers(): Promise<void> {
    const text = await http('health', '{ backend { kind } }');
    expect(JSON.parse(text)).toEqual({ data: { backend: { kind: kind.toUpperCase() } } });
  }

  it('phase 1: reads and refused writes leave every file byte-identical', { timeout: 120_000 }, async () => {
    const before = snapshot(root, isShm);
    const tasks: Array<() => Promise<unknown>> = [];
    /** One operation over HTTP (most), server-sent events or graphql-ws, chosen by the PRNG. */
    const anyTransport = (where: string, document: string, variables?: Record<string, unknown>) => {
      const roll = rng();
      return () =>
        roll < 0.7
          ? http(where, document, variables)
          : roll < 0.85
            ? sse(where, document, variables)
            : overWs(where, document, variables);
    };

    for (const nasty of nastyBodies()) {
      tasks.push(async () => {
        const sent = typeof nasty.body === 'string' ? nasty.body : Buffer.from(nasty.body).toString('latin1');
        const where = `raw ${nasty.method ?? 'POST'} ${nasty.contentType}`;
        let response: { status: number; text: string };
        try {
          response = await post(nasty.body, nasty.contentType, nasty.method);
        } catch (error) {
          // over the body limit the server answers 413 at once and closes the connection, which
          // a client still sending sees as a reset; below it a reset is a finding
          if (Buffer.byteLength(sent, 'latin1') <= MAX_BODY_BYTES) {
            inspector.findings.push({
              where,
              request: sent.slice(0, 300),
              problem: `no response: ${String(error)}`,
              response: '',
            });
          }
          return;
        }
        inspector.inspect(where, sent, response.status, response.text);
      });
    }
    for (const search of [
      '?query={backend{kind}}&variables={bad',
      '?query={backend{kind}}&extensions={bad',
      '?query={backend{kind}}&variables=[1]',
      '?query={backend{kind}}&variables=null',
      '?query=mutation{deleteSession(input:{sessionKey:"alpha"}){__typename}}',
      '?query=',
      '?query=%00',
      '?query=%ZZ',
      `?query=${'{'.repeat(3_000)}`,
      '?operationName=x',
      '?query={backend{kind}}&query={backend{version}}',
    ]) {
      tasks.push(async () => {
        const response = await fetch(`${t.url}${search}`, { headers: { accept: 'application/json' } });
        inspector.inspect('raw GET', search, response.status, await response.text());
      });
    }
    for (let i = 0; i < 300; i++) tasks.push(anyTransport('document', hostileDocument(rng)));
    for (let i = 0; i < 1_000; i++) {
      const document = pick(rng, READ_DOCUMENTS);
      tasks.push(anyTransport('read', document, readVariables(rng)));
    }
    for (let i = 0; i < 400; i++) {
      const document = pick(rng, DESTRUCTIVE_DOCUMENTS);
      // an illegal key, or a legal one no session has
      const key = rng() < 0.5 ? illegalKey(rng).key : `${legalKey(rng, 900)}~absent`;
      tasks.push(async () => {
        const text =
          rng() < 0.8
            ? await http('destructive', document, { k: key })
            : await liveText(document, { k: key });
        expectRefused(text, 'destructive');
      });
    }
    for (let i = 0; i < 500; i++) {
      const { key, content, role } = refusedAppend(rng);
      tasks.push(async () => {
        const text = await http('refused append', APPEND, { k: key, r: role, c: content });
        expectRefused(text, 'refused append');
      });
    }
    for (let i = 0; i < 300; i++) {
      const document = pick(rng, [APPEND, APPEND_MANY, RENAME, ...DESTRUCTIVE_DOCUMENTS]);
      const variables = {
        k: anyValue(rng),
        r: anyValue(rng),
        c: anyValue(rng),
        n: anyValue(rng),
        m: anyValue(rng, 3),
      };
      // a string key with wrong-typed other variables could be legal: keep the key wrong too
      if (typeof variables.k === 'string') variables.k = int(rng, -5, 5);
      tasks.push(async () => {
        const text = await http('wrong types', document, variables);
        expectRefused(text, 'wrong types');
      });
    }
    for (let i = 0; i < 60; i++) {
      const { key } = illegalKey(rng);
      const after = rng() < 0.5 ? undefined : pick(rng, ['', 'x', 'AAAA', anyValue(rng)]);
      const document = `subscription ($k: String!, $a: String) { sessionEvents(sessionKey: $k, after: $a) { __typename } }`;
      tasks.push(() =>
        rng() < 0.5
          ? sse('live', document, { k: key, a: after })
          : overWs('live', document, { k: key, a: after }),
      );
    }

    // deterministic order of generation, interleaved execution
    await pool(tasks, async (task) => {
      await task();
    });
    await rawWebSocketAttacks();
    await stillAnswers();

    const after = snapshot(root, isShm);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [path, hash] of before) expect(after.get(path), path).toBe(hash);
    report('phase 1');
  });

  it('phase 2: writes with hostile legal keys store exactly what the server said it stored', {
    timeout: 120_000,
  }, async () => {
    const seedFiles = snapshot(root, isShm);
    const keys = Array.from({ length: 40 }, () => legalKey(rng));
    const model = new Map<string, { contents: string[]; name: string | null; exists: boolean }>();
    const state = (key: string) => {
      let s = model.get(key);
      if (!s) {
        s = { contents: [], name: null, exists: false };
        model.set(key, s);
      }
      return s;
    };
    // JSONL: two keys sharing a file name, or a key too long for one (255 bytes); SQLite: none
    const WRITE_REFUSALS = kind === 'jsonl' ? ['KEY_COLLISION', 'TOO_LARGE'] : [];
    // one operation per key at a time, so the model's order is the store's order
    const byKey = new Map<string, Array<() => Promise<void>>>();
    for (let i = 0; i < 400; i++) {
      const key = pick(rng, keys);
      const roll = rng();
      const viaWs = rng() < 0.3;
      // legal content: search syntax and control characters, never NUL
      const content = `${hostileSearch(rng, 200).replaceAll('\u0000', '')}${pick(rng, ['', '\n', '\r\n', '\u0001', '"', '\\', '🙂'])}`;
      const send = (document: string, variables: Record<string, unknown>) =>
        viaWs ? liveText(document, variables) : http('write', document, variables);
      const op = async () => {
        if (roll < 0.5) {
          const result = JSON.parse(
            await send(APPEND, {
              k: key,
              r: pick(rng, ['user', 'assistant', 'tool', 'rôle"\\']),
              c: content,
            }),
          );
          const payload = result.data?.appendMessage;
          if (payload?.__typename === 'AppendMessagePayload') {
            state(key).contents.push(content);
            state(key).exists = true;
          } else expect(WRITE_REFUSALS, JSON.stringify(result)).toContain(payload?.code);
        } else if (roll < 0.65) {
          const batch = Array.from({ length: int(rng, 1, 4) }, (_, j) => ({
            role: 'user',
            content: `${content}#${j}`,
          }));
          const result = JSON.parse(await send(APPEND_MANY, { k: key, m: batch }));
          const payload = result.data?.appendMessages;
          if (payload?.__typename === 'AppendMessagesPayload') {
            state(key).contents.push(...batch.map((m) => m.content));
            state(key).exists = true;
          } else expect(WRITE_REFUSALS, JSON.stringify(result)).toContain(payload?.code);
        } else if (roll < 0.8) {
          const name = pick(rng, [null, '', legalKey(rng, 200), 'the "name"', '\u0007bell']);
          const result = JSON.parse(await send(RENAME, { k: key, n: name }));
          const payload = result.data?.renameSession;
          if (payload?.__typename === 'RenameSessionPayload') {
            state(key).name = name === '' ? null : name;
            state(key).exists = true;
          } else expect(WRITE_REFUSALS, JSON.stringify(result)).toContain(payload?.code);
        } else {
          const result = JSON.parse(await send(REMOVE_LAST, { k: key }));
          const payload = result.data?.removeLastMessage;
          if (payload?.__typename === 'RemoveLastMessagePayload') {
            const removed = payload.removedMessage?.content ?? null;
            expect(removed).toBe(state(key).contents.at(-1) ?? null);
            if (removed !== null) state(key).contents.pop();
          } else expect(['NOT_FOUND', ...WRITE_REFUSALS], JSON.stringify(result)).toContain(payload?.code);
        }
      };
      byKey.set(key, [...(byKey.get(key) ?? []), op]);
    }
    await pool([...byKey.values()], async (ops) => {
      for (const op of ops) await op();
    });
    await stillAnswers();

    // the store: seed plus exactly the reported writes
    const listed = new Set<string>();
    let after: string | undefined;
    do {
      const page = await t.backend.sessions({
        first: 1_000,
        order: 'KEY_ASC',
        ...(after && { after: { key: after, lastActivityAt: null } }),
      });
      for (const s of page.items) listed.add(s.key);
      after = page.hasNextPage ? page.items.at(-1)?.key : undefined;
    } while (after);
    const expected = new Set([
      ...Object.keys(SEED_SESSIONS),
      ...[...model].filter(([, s]) => s.exists).map(([k]) => k),
    ]);
    expect([...listed].sort()).toEqual([...expected].sort());
    for (const [key, s] of model) {
      if (!s.exists) continue;
      const info = await t.backend.session(key);
      expect(info?.name ?? null, key).toBe(s.name);
      const page = await t.backend.messages(key, { first: 1_000 });
      expect(
        page.items.map((m) => m.content),
        key,
      ).toEqual(s.contents);
    }
    for (const [key, contents] of Object.entries(SEED_SESSIONS)) {
      const page = await t.backend.messages(key, { first: 1_000 });
      expect(page.items.map((m) => m.content)).toEqual(contents);
    }

    // the files: nothing outside the store's own files moved; JSONL seed files untouched
    const now = snapshot(root, isShm);
    const sessionsDir = join('workspace', 'sessions') + sep;
    for (const [path, hash] of seedFiles) {
      const seedSessionFile = /^(alpha|team-beta|gamma7)\.jsonl$/.test(path.slice(sessionsDir.length));
      if (!path.startsWith(sessionsDir) || seedSessionFile) expect(now.get(path), path).toBe(hash);
    }
    for (const path of now.keys()) {
      if (!seedFiles.has(path))
        expect(path.startsWith(sessionsDir), `a new file outside sessions/: ${path}`).toBe(true);
    }
    if (kind === 'sqlite') {
      for (const path of now.keys()) {
        if (path.startsWith(sessionsDir))
          expect(path.slice(sessionsDir.length)).toMatch(/^sessions\.db(-wal)?$/);
      }
    }

    // search over the hostile content: never an error other than a typed refusal; every special
    // character alone, glued to a word, quoted, starred and negated, then random mixes
    const searches = [
      ...FTS_SPECIALS.flatMap((c) => [
        c,
        `hello${c}`,
        `${c}hello`,
        `"${c}"`,
        `${c}*`,
        `-${c}`,
        `hello ${c} world`,
      ]),
      ...Array.from({ length: 200 }, () => hostileSearch(rng)),
    ];
    await pool(searches, async (q) => {
      const text = await http('search', READ_DOCUMENTS[4]!, { q, n: 20 });
      const result = JSON.parse(text);
      if (result.errors) expect(['INVALID'], `${q}: ${text}`).toContain(result.errors[0]?.extensions?.code);
    });
    report('phase 2');
  });

  function report(phase: string) {
    const codes = [...inspector.codes]
      .sort((a, b) => b[1] - a[1])
      .map(([c, n]) => `${c}=${n}`)
      .join(' ');
    console.info(`hostile ${kind} ${phase}: ${inspector.cases} cases checked; error codes: ${codes}`);
    // one of each kind of finding, so that a single bug does not hide the others
    const distinct = new Map<string, Finding>();
    for (const f of inspector.findings) distinct.set(`${f.where}|${f.problem.slice(0, 60)}`, f);
    expect([...distinct.values()].slice(0, 30)).toEqual([]);
  }

  /** The text of a graphql-ws operation's outcome, checked like an HTTP response. */
  async function liveText(query: string, variables: Record<string, unknown>): Promise<string> {
    const sent = JSON.stringify({ query, variables });
    const settled = await liveSettled(ws.subscribe(query, variables));
    inspector.inspectLive('ws', sent, settled);
    if (Array.isArray(settled)) return JSON.stringify({ errors: settled });
    const s = settled as { data: Json[]; errors: Json[] };
    return JSON.stringify({ data: s.data[0] ?? null, ...(s.errors.length > 0 && { errors: s.errors }) });
  }

  function expectRefused(text: string, where: string): void {
    const result = JSON.parse(text);
    const payload = result.data ? Object.values(result.data)[0] : undefined;
    const refused = result.errors !== undefined || (payload as Json)?.code !== undefined;
    if (!refused)
      inspector.findings.push({
        where,
        request: '',
        problem: 'a write that must be refused was not',
        response: text.slice(0, 600),
      });
  }

  function refusedAppend(r: Rng): { key: string; role: string; content: string } {
    switch (int(r, 0, 4)) {
      case 0:
        return { key: illegalKey(r).key, role: 'user', content: 'x' };
      case 1:
        return { key: legalKey(r), role: 'user', content: `a\u0000b${hostileSearch(r, 100)}` };
      case 2:
        return { key: legalKey(r), role: 'user', content: `${hostileSearch(r, 100)}\ud800` };
      case 3:
        return {
          key: legalKey(r),
          role: 'user',
          content: 'é'.repeat(MAX_CONTENT_BYTES / 2 + int(r, 1, 3_000)),
        };
      default:
        return { key: legalKey(r), role: pick(r, ['', '\u0000', 'r'.repeat(65), '\udc00']), content: 'x' };
    }
  }

  /** Frames no graphql-ws client sends: the socket may close (with a protocol code), never the server. */
  async function rawWebSocketAttacks(): Promise<void> {
    const frames: Array<string | Buffer> = [
      'not json',
      '{}',
      '[]',
      'null',
      '{"type":"subscribe","id":"1","payload":{"query":"{ backend { kind } }"}}',
      '{"type":"connection_init","payload":"x"}',
      '{"type":"connection_init","payload":[1]}',
      '{"type":"nope"}',
      Buffer.from([0xff, 0xfe, 0xfd]),
      Buffer.from([0xed, 0xa0, 0x80]),
      `{"type":"connection_init"}${'x'.repeat(10)}`,
      JSON.stringify({ type: 'connection_init', payload: { a: 'x'.repeat(2_000_000) } }),
    ];
    const afterInit: Array<string | Buffer> = [
      '{"type":"subscribe"}',
      '{"type":"subscribe","id":1,"payload":{"query":"{ backend { kind } }"}}',
      '{"type":"subscribe","id":"","payload":{"query":"{ backend { kind } }"}}',
      `{"type":"subscribe","id":"${'i'.repeat(100_000)}","payload":{"query":"{ backend { kind } }"}}`,
      '{"type":"subscribe","id":"a","payload":null}',
      '{"type":"subscribe","id":"a","payload":{"query":1}}',
      '{"type":"subscribe","id":"a","payload":{"query":"{ backend { kind } }","variables":"x"}}',
      '{"type":"subscribe","id":"a","payload":{"query":"{ backend { kind } }","variables":[1]}}',
      '{"type":"complete","id":"never-started"}',
      '{"type":"connection_init"}',
      Buffer.from([0xc3, 0x28]),
      '{"type":"ping","payload":"x"}',
      '{"type":"pong"}',
    ];
    const attack = async (frame: string | Buffer, init: boolean) => {
      const socket = new WebSocket(wsUrlOf(t.url), 'graphql-transport-ws');
      const received: string[] = [];
      const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
      socket.on('message', (data) => received.push(String(data)));
      socket.on('error', () => {});
      await new Promise((resolve) => socket.once('open', resolve));
      if (init) socket.send('{"type":"connection_init"}');
      socket.send(frame);
      const settle = setTimeout(() => socket.close(1000), 300);
      const code = await closed;
      clearTimeout(settle);
      const sent = Buffer.isBuffer(frame) ? frame.toString('latin1') : frame;
      // the protocol's own frames carry no GraphQL result: only `next` and `error` payloads are checked
      const payloads = received.flatMap((m) => {
        const frame = JSON.parse(m) as Json;
        if (frame.type === 'next') return [frame.payload];
        if (frame.type === 'error') return [{ errors: frame.payload }];
        return [];
      });
      inspector.inspectLive(`raw ws ${init ? 'after init' : ''}`, sent, {
        data: null,
        errors: payloads.flatMap((p) => p.errors ?? []),
      });
      for (const text of received) {
        for (const pattern of LEAKS_IN_FRAMES)
          if (pattern.test(text))
            inspector.findings.push({
              where: 'raw ws',
              request: sent.slice(0, 200),
              problem: `frame leaks ${pattern}`,
              response: text.slice(0, 600),
            });
      }
      if (code === 1011 || code === 4500) {
        inspector.findings.push({
          where: 'raw ws',
          request: sent.slice(0, 200),
          problem: `closed with ${code}`,
          response: received.join('\n').slice(0, 600),
        });
      }
    };
    await pool(
      [...frames.map((f) => [f, false] as const), ...afterInit.map((f) => [f, true] as const)],
      ([f, init]) => attack(f, init),
    );
  }
});
