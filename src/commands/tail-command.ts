/**
 * `sessiongraph tail <sessionKey>`: a session's messages in the terminal as they are stored, the
 * recent ones first. `sessiongraph tail --all`: the session list's changes. Both follow the
 * server across restarts: the session feed resumes from the last cursor printed, so nothing is
 * printed twice and nothing is missed. Output goes to stdout (JSON lines with `--json`), notes
 * about the connection to stderr; SIGINT or SIGTERM ends it with exit code 0.
 */

import type { Command } from 'commander';
import { clientTokenOption } from '../config.js';
import { EXIT_FAILURE, EXIT_USAGE, exitCodesHelp } from './exit-codes.js';
import { FollowError, followLive, httpUrlOf } from './follow-live.js';
import { formatActivityEvent, formatSessionEvent, type TailFormat } from './tail-format.js';

const SESSION_EVENTS = `subscription Tail($key: String!, $after: String, $fromStart: Boolean) {
  sessionEvents(sessionKey: $key, after: $after, fromStart: $fromStart) {
    __typename
    ... on LiveEvent { sessionKey cursor }
    ... on MessageAppended { message { seq role content createdAt } }
    ... on MessageRemoved { seq }
    ... on SessionRenamed { name }
    ... on SessionCompacted { droppedCount }
    ... on SessionReset { session { messageCount } }
  } }`;

const SESSION_ACTIVITY = `subscription TailAll($filter: SessionActivityFilter) {
  sessionActivity(filter: $filter) { kind sessionKey session { name messageCount lastActivityAt } } }`;

const RECENT = `query TailRecent($key: String!, $last: Int!) { session(key: $key) {
  messages(last: $last) { edges { cursor node { seq role content createdAt } } } } }`;

interface TailValues {
  all?: boolean;
  url: string;
  after?: string;
  lines: string;
  json?: boolean;
  color: boolean;
  keyPrefix?: string;
  channel?: string;
  token?: string;
}

export function registerTailCommand(program: Command): void {
  const command = program
    .command('tail')
    .description("print a session's messages as they are stored (or, with --all, the session list's changes)")
    .argument('[sessionKey]', 'the raw session key to follow')
    .option('--all', 'follow the session list instead of one session')
    .option('--url <url>', "the server's GraphQL endpoint", 'http://127.0.0.1:4000/graphql')
    .option('--after <cursor>', 'first print every message after this cursor (from --json output or the API)')
    .option('-n, --lines <count>', 'without --after: first print this many recent messages', '10')
    .option('--json', 'one JSON object per line, with the cursor to resume from')
    .option('--no-color', 'no colours, also on a terminal')
    .option('--key-prefix <prefix>', 'with --all: only sessions whose key starts with this')
    .option('--channel <channel>', 'with --all: only sessions of this channel (key text before the first _)')
    .addOption(clientTokenOption());
  command.addHelpText(
    'after',
    `
Talks to a running server over graphql-ws. When the connection drops or the server restarts,
it reconnects and resumes from the last cursor printed: nothing twice, nothing missed. Notes
about the connection go to stderr, messages to stdout.

Examples:
  sessiongraph tail telegram_42
  sessiongraph tail telegram_42 --json --after <cursor> | jq .content
  sessiongraph tail --all --channel discord --url http://10.0.0.5:4000/graphql

${exitCodesHelp()}`,
  );

  command.action(async (sessionKey: string | undefined, values: TailValues, self: Command) => {
    if ((sessionKey === undefined) === !values.all) {
      self.error('tail needs a session key, or --all (not both)', { exitCode: EXIT_USAGE });
    }
    const lines = Number(values.lines);
    if (!Number.isInteger(lines) || lines < 0 || lines > 1_000) {
      self.error('--lines must be a whole number from 0 to 1000', { exitCode: EXIT_USAGE });
    }
    const format: TailFormat = {
      json: values.json === true,
      color: values.color && process.stdout.isTTY === true,
    };
    const controller = new AbortController();
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => controller.abort());
    // a closed pipe (`| head`) ends the tail quietly
    process.stdout.on('error', () => controller.abort());
    const print = (text: string) => {
      if (!controller.signal.aborted) process.stdout.write(text);
    };
    const onConnectionChange = (problem: string | null) =>
      process.stderr.write(problem === null ? 'tail: reconnected\n' : `tail: ${problem}; reconnecting\n`);

    try {
      if (values.all) {
        const filter = { keyPrefix: values.keyPrefix, channel: values.channel };
        await followLive({
          url: values.url,
          token: values.token,
          query: SESSION_ACTIVITY,
          variablesFor: () => ({ filter }),
          onEvent: (event) => print(formatActivityEvent(event, format)),
          onConnectionChange,
          signal: controller.signal,
        });
      } else {
        const key = sessionKey!;
        // null: the session holds no message yet, so the feed starts from its first one
        let cursor: string | null | undefined =
          values.after ??
          (await printRecent(values.url, values.token, key, lines, format, print, controller.signal));
        await followLive({
          url: values.url,
          token: values.token,
          query: SESSION_EVENTS,
          variablesFor: () => ({ key, after: cursor ?? null, fromStart: cursor == null }),
          onEvent: (event) => {
            print(formatSessionEvent(event, format));
            cursor = String(event.cursor);
          },
          onConnectionChange,
          signal: controller.signal,
        });
      }
    } catch (err) {
      process.stderr.write(`tail: ${err instanceof FollowError ? err.message : String(err)}\n`);
      process.exitCode = EXIT_FAILURE;
      return;
    }
    process.exitCode = 0;
  });
}

/**
 * Prints the session's last `count` messages and returns the cursor to follow from: the last
 * message's, or null when it has none (the feed then starts `fromStart`, so nothing stored
 * meanwhile is missed); undefined once `signal` aborts.
 * Retries until the server answers.
 */
async function printRecent(
  url: string,
  token: string | undefined,
  key: string,
  count: number,
  format: TailFormat,
  print: (text: string) => void,
  signal: AbortSignal,
): Promise<string | null | undefined> {
  for (let backoff = 100; !signal.aborted; backoff = Math.min(backoff * 2, 2_000)) {
    let body: { data?: { session: { messages: { edges: Array<{ cursor: string; node: object }> } } | null } };
    try {
      const response = await fetch(httpUrlOf(url), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          ...(token !== undefined && { authorization: `Bearer ${token}` }),
        },
        body: JSON.stringify({ query: RECENT, variables: { key, last: Math.max(count, 1) } }),
        signal,
      });
      if (response.status === 401) {
        throw new FollowError(
          token === undefined
            ? 'the server requires a token: pass --token or set SESSIONGRAPH_TOKEN'
            : 'the server refused the token',
        );
      }
      body = (await response.json()) as typeof body;
      if (!response.ok || !body.data)
        throw new FollowError(`the server answered ${response.status}: ${JSON.stringify(body)}`);
    } catch (err) {
      if (err instanceof FollowError || signal.aborted) throw err;
      await new Promise((resolve) => setTimeout(resolve, backoff));
      continue;
    }
    const edges = body.data.session?.messages.edges ?? [];
    for (const edge of edges.slice(edges.length - count)) {
      print(
        formatSessionEvent(
          { __typename: 'MessageAppended', sessionKey: key, message: edge.node, cursor: edge.cursor },
          format,
        ),
      );
    }
    return edges.at(-1)?.cursor ?? null;
  }
  return undefined;
}
