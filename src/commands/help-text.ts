/**
 * What `--help` prints after commander's own lists: what the tool is for, examples, every
 * environment variable, the endpoints `serve` offers, and the exit codes (exit-codes.ts).
 */

import { environmentVariables } from '../config.js';
import { exitCodesHelp } from './exit-codes.js';

/** After `sessiongraph --help`'s command list. */
export function programHelp(): string {
  const variables = environmentVariables();
  const width = Math.max(...variables.map((v) => v.env.length));
  return `
Serves a zeroclaw workspace's chat sessions (SQLite, JSONL, or PostgreSQL) as a GraphQL API with
live subscriptions; copies, migrates and follows sessions from the command line.
Run \`sessiongraph <command> --help\` for each command's options and examples.

Examples:
  sessiongraph serve --data ~/.zeroclaw/workspace        serve a zeroclaw workspace on 127.0.0.1:4000
  sessiongraph migrate --data ./workspace                JSONL sessions into the workspace's SQLite store
  sessiongraph export --data ./workspace > backup.jsonl  every session, as JSON lines
  sessiongraph tail telegram_42                          follow a session live from a running server

Environment variables (a flag given on the command line wins over its variable):
${variables.map((v) => `  ${v.env.padEnd(width)}  ${v.flag}: ${v.description}`).join('\n')}

${exitCodesHelp()}`;
}

/** After `sessiongraph serve --help`'s options. */
export function serveHelp(): string {
  return `
Prints the GraphQL URL on stdout once it listens; logs go to stderr (JSON lines, or readable
lines on a terminal), each line of a request with its request id. SIGINT or SIGTERM drains:
readiness turns false, in-flight requests finish, live subscriptions end with UNAVAILABLE (clients
resume from their cursor), then it exits 0; a second signal exits 1 at once.

Endpoints on the one port:
  /graphql  GraphQL over HTTP (GraphiQL in a browser), server-sent events, and graphql-ws
  /health   liveness: 200 while the process serves
  /ready    readiness: 503 while draining, while storage cannot be reached, or Redis is down
  /metrics  Prometheus metrics (unless --no-metrics)

Examples:
  sessiongraph serve --data ~/.zeroclaw/workspace
  sessiongraph serve --backend postgres --database-url postgres://app@db:5432/app --redis-url redis://cache:6379
  SESSIONGRAPH_PORT=0 SESSIONGRAPH_LOG_LEVEL=debug sessiongraph serve --no-metrics

${exitCodesHelp()}`;
}
