/**
 * The soak's dashboards: each polls, at a fixed interval, the session list (`sessions`, most
 * recently active first) and the newest messages of one listed session (`messages`), over HTTP,
 * like the built-in dashboard does on load. A poll that finds the server down (the restart) is
 * counted; an answer with errors is a failure; a session whose message count went down between two
 * polls of one dashboard is a regression (nothing is ever removed during the soak).
 */

import { postGraphql } from './graphql-http.js';

const SESSIONS = `query ($first: Int!) { sessions(first: $first) {
  edges { cursor node { key messageCount lastSeq lastActivityAt lastMessage { seq role content } } } } }`;

const MESSAGES = `query ($key: String!, $last: Int!) { session(key: $key) {
  key messageCount messages(last: $last) { edges { cursor node { seq role content createdAt } } } } }`;

export interface DashboardStats {
  /** Queries answered without errors. */
  ok: number;
  /** Queries that found the server down (refused, reset, timed out) or unavailable (503). */
  down: number;
  /** Queries answered with errors or a non-200 status; the first few, as text. */
  failures: string[];
  failureCount: number;
  /** A session's messageCount lower than one poll before. */
  regressions: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface SessionsData {
  sessions: { edges: Array<{ node: { key: string; messageCount: number } }> };
}

interface MessagesData {
  session: { messageCount: number; messages: { edges: Array<{ node: { seq: number } }> } } | null;
}

export class Dashboards {
  readonly stats: DashboardStats = { ok: 0, down: 0, failures: [], failureCount: 0, regressions: 0 };
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly url: () => string,
    private readonly options: { dashboards: number; pollMs: number; random: () => number },
  ) {}

  start(): void {
    this.running = true;
    for (let d = 0; d < this.options.dashboards; d++) this.loops.push(this.loop());
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async loop(): Promise<void> {
    const counts = new Map<string, number>();
    const { pollMs, random } = this.options;
    await sleep(random() * pollMs);
    while (this.running) {
      const started = performance.now();
      const list = await this.query<SessionsData>(SESSIONS, { first: 20 });
      const edges = list?.sessions.edges ?? [];
      for (const { node } of edges) this.observe(counts, node.key, node.messageCount);
      const picked = edges[Math.floor(random() * edges.length)]?.node.key;
      if (picked !== undefined) {
        const page = await this.query<MessagesData>(MESSAGES, { key: picked, last: 20 });
        if (page?.session) {
          this.observe(counts, picked, page.session.messageCount);
          const seqs = page.session.messages.edges.map((e) => e.node.seq);
          if (seqs.some((seq, i) => i > 0 && seq <= seqs[i - 1]!))
            this.fail(`messages out of order: ${seqs}`);
        }
      }
      await sleep(Math.max(0, pollMs - (performance.now() - started)));
    }
  }

  private observe(counts: Map<string, number>, key: string, count: number): void {
    if (count < (counts.get(key) ?? 0)) this.stats.regressions++;
    counts.set(key, Math.max(count, counts.get(key) ?? 0));
  }

  private fail(text: string): void {
    this.stats.failureCount++;
    if (this.stats.failures.length < 10) this.stats.failures.push(text);
  }

  private async query<T>(query: string, variables: Record<string, unknown>): Promise<T | undefined> {
    const outcome = await postGraphql(this.url(), query, variables);
    if (outcome.kind === 'down' || outcome.status === 503) {
      this.stats.down++;
      return undefined;
    }
    if (outcome.status !== 200 || outcome.body.errors) {
      this.fail(`HTTP ${outcome.status} ${JSON.stringify(outcome.body).slice(0, 500)}`);
      return undefined;
    }
    this.stats.ok++;
    return outcome.body.data as T;
  }
}
