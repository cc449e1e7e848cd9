/**
 * The dashboard end to end, in real headless Chromium (Debian's `chromium`, driven by
 * playwright-core) against a real server on port 0 with a real SQLite store: the page loads and
 * lists what the API stored, follows writes made through the API live, resumes its feeds after
 * the server restarts, highlights search matches, shows message content only as text, and asks
 * for a token when the server requires one. Each step leaves a screenshot in
 * test-artifacts/dashboard/ (not committed). Without Chromium every case that needs it fails (vitest
 * would report a failed beforeAll as skipped cases, so the launch error is rethrown in each).
 */

import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTENT_SECURITY_POLICY } from '../../src/ui/dashboard-page.js';
import { type Json, startTestServer, type TestServer } from '../helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  // without these Chromium keeps trying to reach Google's services and is slow on a closed network
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/dashboard/', import.meta.url));
/** How long the page may take to show what the test waits for. */
const UI_WAIT_MS = 15_000;

const APPEND = `mutation ($input: AppendMessagesInput!) {
  appendMessages(input: $input) {
    __typename
    ... on AppendMessagesPayload { appendedMessages { seq } }
    ... on Error { message }
  }
}`;

/** Appends through the API, as any client would, and returns the stored seqs. */
async function append(
  url: string,
  sessionKey: string,
  messages: Array<{ role: string; content: string }>,
  token?: string,
): Promise<number[]> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json',
      ...(token && { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify({ query: APPEND, variables: { input: { sessionKey, messages } } }),
  });
  const body = (await response.json()) as Json;
  expect(response.status, JSON.stringify(body)).toBe(200);
  expect(body.data.appendMessages.__typename, JSON.stringify(body)).toBe('AppendMessagesPayload');
  return body.data.appendMessages.appendedMessages.map((m: { seq: number }) => m.seq);
}

/** Everything the page reported that a correct page never does: script errors, CSP refusals. */
function watchPage(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (/Content.Security.Policy|Trusted Type|Refused to/i.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
  return problems;
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });

const SECRET = 'dashboard-secret-0123456789';
const NEW_SECRET = 'dashboard-rotated-9876543210';

/** The HTTP status of a trivial query with this token. */
async function status(url: string, token: string): Promise<number> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: '{ __typename }' }),
  });
  await response.body?.cancel();
  return response.status;
}

/** Resolves once `condition` holds, checking every 50 ms; rejects after 10 s. */
async function until(condition: () => Promise<boolean>): Promise<void> {
  for (let waited = 0; !(await condition()); waited += 50) {
    if (waited > 10_000) throw new Error('the condition never held');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const TOOL_CALL = JSON.stringify({
  content: '',
  tool_calls: [{ id: 'call_1', name: 'lookup', arguments: JSON.stringify({ animal: 'zebra', limit: 3 }) }],
});
const HOSTILE = '<img src=x onerror="window.__pwned = 1"><b>bold</b> & <script>window.__pwned = 2</script>';

describe('the dashboard in headless Chromium', () => {
  let context: BrowserContext;
  let profile: string;
  let dataDir: string;
  let t: TestServer;
  let page: Page;
  let problems: string[];
  let origin: string;
  /** Every graphql-ws message the page sent, parsed. */
  const sent: Json[] = [];

  /** Why Chromium could not be started: every case that needs it fails with this, none skips. */
  let noBrowser: Error | undefined;
  const needBrowser = () => {
    if (noBrowser) throw noBrowser;
  };

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    dataDir = mkdtempSync(join(tmpdir(), 'sg-ui-'));
    t = await startTestServer('sqlite', { dataDir });
    origin = new URL(t.url).origin;
    try {
      if (!existsSync(CHROMIUM)) {
        throw new Error(`no Chromium at ${CHROMIUM}: install Debian's chromium package (.ci/run does)`);
      }
      profile = mkdtempSync(join(tmpdir(), 'sg-chromium-'));
      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
        viewport: { width: 1280, height: 800 },
      });
      context.setDefaultTimeout(UI_WAIT_MS);
      page = await context.newPage();
      problems = watchPage(page);
      page.on('websocket', (socket) => {
        socket.on('framesent', (frame) => sent.push(JSON.parse(String(frame.payload))));
      });
    } catch (err) {
      noBrowser = err instanceof Error ? err : new Error(String(err));
    }
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await t?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("starts Debian's Chromium", () => {
    expect(noBrowser?.message).toBeUndefined();
  });

  it('serves the page under a strict Content-Security-Policy, and / redirects to it', async () => {
    const root = await fetch(`${origin}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(new URL(root.headers.get('location')!, `${origin}/`).href).toBe(`${origin}/ui/`);

    const html = await fetch(`${origin}/ui/`);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = html.headers.get('content-security-policy')!;
    expect(csp).toBe(CONTENT_SECURITY_POLICY);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("require-trusted-types-for 'script'");
    expect(csp).not.toContain('unsafe');
    const text = await html.text();
    const script = /src="(app\.js\?v=[0-9a-f]{16})"/.exec(text)?.[1];
    expect(script).toBeDefined();
    expect(text).not.toMatch(/<script>|<style>| style=| on\w+=/);

    const js = await fetch(`${origin}/ui/${script}`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(js.headers.get('cache-control')).toContain('immutable');
    const etag = js.headers.get('etag')!;
    expect((await fetch(`${origin}/ui/app.js`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    expect((await fetch(`${origin}/ui/app.css`)).headers.get('content-type')).toMatch(/^text\/css/);
    expect((await fetch(`${origin}/ui/nothing-here`)).status).toBe(404);
    expect((await fetch(`${origin}/ui/`, { method: 'POST' })).status).toBe(405);
  });

  it('is not served with --no-ui', async () => {
    const off = await startTestServer('sqlite', { config: { ui: false } });
    try {
      const base = new URL(off.url).origin;
      expect((await fetch(`${base}/`, { redirect: 'manual' })).status).toBe(404);
      expect((await fetch(`${base}/ui/`)).status).toBe(404);
      expect((await fetch(`${base}/ui/app.js`)).status).toBe(404);
      expect((await off.gql('{ __typename }')).data).toEqual({ __typename: 'Query' });
    } finally {
      await off.close();
    }
  });

  it('lists the stored sessions and shows a new one live', async () => {
    needBrowser();
    await append(t.url, 'telegram_1_alice', [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'Where do zebras live?' },
      { role: 'assistant', content: TOOL_CALL },
      { role: 'tool', content: JSON.stringify({ animal: 'zebra', habitat: ['savanna', 'grassland'] }) },
      { role: 'user', content: HOSTILE },
    ]);
    await page.goto(`${origin}/`);
    expect(new URL(page.url()).pathname).toBe('/ui/');
    const alice = page.locator('a.session[data-key="telegram_1_alice"]');
    await alice.waitFor();
    expect(await alice.locator('.session-count').textContent()).toBe('5');
    await page.locator('#connection[data-status="live"]').waitFor();
    await shot(page, '01-session-list');

    await append(t.url, 'discord_2_bob', [{ role: 'user', content: 'hello from bob' }]);
    const bob = page.locator('a.session[data-key="discord_2_bob"]');
    await bob.waitFor();
    expect(await bob.locator('.session-preview').textContent()).toContain('hello from bob');
    // most recently active first
    expect(await page.locator('a.session').first().getAttribute('data-key')).toBe('discord_2_bob');
    await shot(page, '02-session-appears-live');
  });

  it('shows a session role-coloured, tool JSON readable, content as text only, and tails it live', async () => {
    needBrowser();
    await page.locator('a.session[data-key="telegram_1_alice"]').click();
    const messages = page.locator('#messages li.message');
    await messages.nth(4).waitFor();
    expect(await messages.count()).toBe(5);
    expect(await messages.evaluateAll((items) => items.map((i) => i.getAttribute('data-role')))).toEqual([
      'system',
      'user',
      'assistant',
      'tool',
      'user',
    ]);
    const userColour = await messages.nth(1).evaluate((e) => getComputedStyle(e).borderLeftColor);
    const toolColour = await messages.nth(3).evaluate((e) => getComputedStyle(e).borderLeftColor);
    expect(userColour).not.toBe(toolColour);

    // the tool call, pretty-printed, with its JSON-in-a-string arguments expanded
    const call = await messages.nth(2).locator('pre.json').textContent();
    expect(call).toContain('"tool_calls": [');
    expect(call).toContain('"animal": "zebra"');
    expect(call).toContain('\n');
    expect(await messages.nth(3).locator('pre.json .json-key').first().textContent()).toBe('"animal"');

    // markup in content is shown as the characters it is, and never runs
    expect(await messages.nth(4).locator('.content').textContent()).toBe(HOSTILE);
    expect(await page.locator('#messages img, #messages b, #messages script').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    await shot(page, '03-session-view');

    const [seq] = await append(t.url, 'telegram_1_alice', [
      { role: 'assistant', content: 'On the savanna.' },
    ]);
    const live = page.locator(`#messages li.message[data-seq="${seq}"]`);
    await live.waitFor();
    expect(await live.locator('.content').textContent()).toBe('On the savanna.');
    expect(await messages.count()).toBe(6);
    await shot(page, '04-message-appears-live');
  });

  it('resumes the session from its last cursor after the server restarts', async () => {
    needBrowser();
    const last = await t.gql(
      '{ session(key: "telegram_1_alice") { messages(last: 1) { edges { cursor } } } }',
    );
    const lastCursor: string = last.data!.session.messages.edges[0].cursor;
    const subscribesBefore = sent.filter((m) => m.type === 'subscribe').length;
    const port = t.server.port;
    await t.close();
    await page.locator('#connection[data-status="offline"]').waitFor();
    t = await startTestServer('sqlite', { dataDir, port });
    // stored while the page is away or reconnecting: the resumed feed must bring it, once
    const [seq] = await append(t.url, 'telegram_1_alice', [{ role: 'user', content: 'Anything else?' }]);
    await page.locator(`#messages li.message[data-seq="${seq}"]`).waitFor();
    await page.locator('#connection[data-status="live"]').waitFor();
    const [next] = await append(t.url, 'telegram_1_alice', [
      { role: 'assistant', content: 'Zebras are fast.' },
    ]);
    await page.locator(`#messages li.message[data-seq="${next}"]`).waitFor();
    const seqs = await page
      .locator('#messages li.message')
      .evaluateAll((items) => items.map((i) => Number(i.getAttribute('data-seq'))));
    expect(seqs).toHaveLength(8);
    expect(new Set(seqs).size).toBe(8);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    // the list follows through its own feed, resubscribed (and refetched) on its own schedule
    await page.locator('a.session[data-key="telegram_1_alice"] .session-count', { hasText: /^8$/ }).waitFor();
    // the feed was subscribed again from the last message the page had, not from where it began
    const resubscribed = sent
      .filter((m) => m.type === 'subscribe')
      .slice(subscribesBefore)
      .filter((m) => m.payload.query.includes('sessionEvents'));
    expect(resubscribed.length).toBeGreaterThan(0);
    expect(resubscribed[0].payload.variables).toEqual({
      sessionKey: 'telegram_1_alice',
      after: lastCursor,
      fromStart: false,
    });
    await shot(page, '05-resumed-after-restart');
  }, 60_000);

  it('follows a session opened before it exists, keeping the newest 1,000 messages while tailing', async () => {
    needBrowser();
    await page.goto(`${origin}/ui/#/s/${encodeURIComponent('bulk_5_eve')}`);
    await page.locator('#session-header', { hasText: 'no messages yet' }).waitFor();
    const batch = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => ({
        role: i % 2 ? 'assistant' : 'user',
        content: `line ${from + i}`,
      }));
    await append(t.url, 'bulk_5_eve', batch(1, 1_000));
    const seqs = await append(t.url, 'bulk_5_eve', batch(1_001, 5));
    const newest = page.locator(`#messages li.message[data-seq="${seqs.at(-1)}"]`);
    await newest.waitFor();
    expect(await newest.locator('.content').textContent()).toBe('line 1005');
    // holding nothing, the view's feed starts at the session's start: the batch, appended right
    // after the empty page was shown, may land before the subscription is set up and still shows
    const subscribed = sent.find(
      (m) => m.type === 'subscribe' && m.payload.variables?.sessionKey === 'bulk_5_eve',
    );
    expect(subscribed?.payload.variables).toEqual({ sessionKey: 'bulk_5_eve', after: null, fromStart: true });
    const shown = page.locator('#messages li.message');
    expect(await shown.count()).toBe(1_000);
    expect(await shown.first().locator('.content').textContent()).toBe('line 6');
    await shot(page, '06-tail-trimmed');

    await page.locator('#messages-earlier').click();
    await page
      .locator('#messages li.message', { hasText: /^.*line 1$/ })
      .first()
      .waitFor();
    expect(await shown.first().locator('.content').textContent()).toBe('line 1');
    expect(await shown.count()).toBe(1_005);
    expect(await page.locator('#messages-earlier').isHidden()).toBe(true);
  }, 60_000);

  it('searches, highlighting the matches and showing markup as text', async () => {
    needBrowser();
    await page.locator('#search-input').fill('zebra');
    await page.locator('#search-input').press('Enter');
    const hits = page.locator('#search-results li.hit');
    await hits.first().waitFor();
    const marks = await page.locator('#search-results mark').allTextContents();
    expect(marks.length).toBeGreaterThan(0);
    for (const mark of marks) expect(mark.toLowerCase()).toMatch(/^zebra/);
    expect(await page.locator('#search-summary').textContent()).toContain('zebra');
    await shot(page, '07-search-highlight');

    await page.locator('#search-input').fill('bold');
    await page.locator('#search-input').press('Enter');
    await page.locator('#search-results mark', { hasText: 'bold' }).waitFor();
    const snippet = await page.locator('#search-results .snippet').first().textContent();
    expect(snippet).toContain('<b>bold</b>');
    expect(await page.locator('#search-results b, #search-results img, #search-results script').count()).toBe(
      0,
    );
    await shot(page, '08-search-markup-as-text');

    // a hit leads to its message in its session
    await page.locator('#search-results li.hit a').first().click();
    await page.locator('#messages li.message.focus').waitFor();
    expect(problems).toEqual([]);
  });

  it('asks for a token when the server requires one, shows the data live, and asks again when it is revoked', async () => {
    needBrowser();
    const tokensFile = join(dataDir, 'tokens');
    writeFileSync(tokensFile, `dash:${SECRET}:read,write\n`);
    const guarded = await startTestServer('sqlite', { config: { tokensFile } });
    const tab = await context.newPage();
    const tabProblems = watchPage(tab);
    try {
      await append(guarded.url, 'slack_3_carol', [{ role: 'user', content: 'behind a token' }], SECRET);
      await tab.goto(`${new URL(guarded.url).origin}/ui/`);
      const dialog = tab.locator('#token-dialog[open]');
      await dialog.waitFor();
      expect(await tab.locator('#token-reason').textContent()).toContain('requires');
      expect(await tab.locator('a.session').count()).toBe(0);
      await shot(tab, '09-token-prompt');

      await tab.locator('#token-input').fill('not-the-right-token-000');
      await tab.locator('#token-input').press('Enter');
      await tab.locator('#token-reason', { hasText: 'refused' }).waitFor();
      await dialog.waitFor();

      await tab.locator('#token-input').fill(SECRET);
      await tab.locator('#token-input').press('Enter');
      await tab.locator('a.session[data-key="slack_3_carol"]').waitFor();
      expect(await tab.locator('#token-dialog[open]').count()).toBe(0);
      expect(await tab.evaluate(() => sessionStorage.getItem('sessiongraph.token'))).toBe(SECRET);
      // the live feed is authenticated too (graphql-ws connection_init)
      await tab.locator('#connection[data-status="live"]').waitFor();
      await append(guarded.url, 'slack_4_dave', [{ role: 'user', content: 'live behind a token' }], SECRET);
      await tab.locator('a.session[data-key="slack_4_dave"]').waitFor();
      await shot(tab, '10-token-accepted');

      // the token is replaced in the tokens file: the page's feeds end (UNAUTHENTICATED) at their
      // next event, and the page asks for the new token
      writeFileSync(tokensFile, `dash:${NEW_SECRET}:read,write\n`);
      await until(async () => (await status(guarded.url, NEW_SECRET)) === 200);
      await append(
        guarded.url,
        'slack_5_erin',
        [{ role: 'user', content: 'after the rotation' }],
        NEW_SECRET,
      );
      await tab.locator('#token-reason', { hasText: 'refused' }).waitFor();
      await dialog.waitFor();
      await shot(tab, '11-token-revoked');
      await tab.locator('#token-input').fill(NEW_SECRET);
      await tab.locator('#token-input').press('Enter');
      await tab.locator('a.session[data-key="slack_5_erin"]').waitFor();
      await tab.locator('#connection[data-status="live"]').waitFor();
      await append(guarded.url, 'slack_6_finn', [{ role: 'user', content: 'live again' }], NEW_SECRET);
      await tab.locator('a.session[data-key="slack_6_finn"]').waitFor();
      expect(tabProblems).toEqual([]);
    } finally {
      await tab.close();
      await guarded.close();
    }
  }, 60_000);
});
