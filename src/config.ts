/**
 * The server's configuration: command-line flags and `SESSIONGRAPH_*` environment variables,
 * validated once into a frozen Config. Precedence: flag > environment > default. This is the only
 * module that declares environment variables; nothing else in src/ reads process.env.
 */

import { resolve } from 'node:path';
import { Option } from 'commander';
import { z } from 'zod';
import { isLoopbackHost, normalizeOrigin } from './auth/origin-policy.js';
import {
  parseTokenSpecs,
  secretDigest,
  splitTokenSpecs,
  type TokenEntry,
  TokenSpecError,
} from './auth/token-spec.js';
import { DEFAULT_LIMITS } from './backends/backend.js';
import { MAX_TTL_HOURS } from './backends/validate.js';
import { DEFAULT_MAX_BODY_BYTES } from './limits/limit-plugins.js';
import { DEFAULT_QUERY_LIMITS } from './limits/query-limits.js';
import { DEFAULT_MAX_OPERATION_NAMES } from './metrics/use-metrics.js';
import { DEFAULT_GRAPHQL_WS_OPTIONS } from './transport/attach-graphql-ws.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface Config {
  /** @default 'sqlite' */
  readonly backend: 'sqlite' | 'jsonl' | 'postgres';
  /** The workspace: the folder that holds `sessions/` (absolute). @default './data' */
  readonly dataDir: string;
  /** postgres only: `postgres://user@host:5432/db`. @default null */
  readonly databaseUrl: string | null;
  /** postgres only: the PostgreSQL schema holding the tables. @default 'sessiongraph' */
  readonly databaseSchema: string;
  /** postgres only: pooled connections. @default 10 */
  readonly poolSize: number;
  /**
   * postgres backend: how long a write waits for a session another writer holds (at most one
   * pooled connection per session waits; the rest queue in memory), and any request for a pooled
   * connection, before it fails with UNAVAILABLE. @default 5_000 // milliseconds
   */
  readonly lockTimeoutMs: number;
  /**
   * Live events through Redis pub/sub instead of in-process, so that several instances serving
   * one store share them: `redis://host:6379`. @default null // in-process bus
   */
  readonly redisUrl: string | null;
  /** Redis channel prefix; deployments sharing one Redis need distinct ones. @default 'sessiongraph' */
  readonly redisPrefix: string;
  /** 0 picks a free port. @default 4_000 */
  readonly port: number;
  /** @default '127.0.0.1' // loopback only */
  readonly host: string;
  /** @default 1_048_576 // bytes of UTF-8 per message content */
  readonly maxContentBytes: number;
  /** When set, sessions idle longer than this are removed at start and then hourly. @default null // never */
  readonly sessionTtlHours: number | null;
  /**
   * Largest WebSocket message a client may send; a larger one closes its socket (code 1009). At
   * least maxContentBytes, like maxBodyBytes: the largest allowed message must fit in a `subscribe`.
   * @default 4_194_304 // bytes, as maxBodyBytes
   */
  readonly wsMaxPayloadBytes: number;
  /** Operations (subscriptions and queries) running at once on one WebSocket. @default 100 */
  readonly maxSubscriptionsPerConnection: number;
  /**
   * Messages (and pings) one WebSocket may send per second, sustained; faster closes it with 4002.
   * @default 100 // messages per second
   */
  readonly wsMessageRate: number;
  /** Messages one WebSocket may send at once above wsMessageRate. @default 300 // messages */
  readonly wsMessageBurst: number;
  /** Largest HTTP request body; a larger one is refused with 413 BODY_TOO_LARGE. @default 4_194_304 // bytes */
  readonly maxBodyBytes: number;
  /** Deepest selection nesting, fragments inlined (QUERY_TOO_DEEP). @default 12 */
  readonly maxQueryDepth: number;
  /** Largest estimated operation cost (QUERY_TOO_COMPLEX). @default 200_000 */
  readonly maxQueryCost: number;
  /** Aliases per operation (TOO_MANY_ALIASES). @default 30 */
  readonly maxAliases: number;
  /** Lexical tokens per document (TOO_MANY_TOKENS). @default 2_000 */
  readonly maxQueryTokens: number;
  /** Directives per operation (TOO_MANY_DIRECTIVES). @default 50 */
  readonly maxDirectives: number;
  /** The largest `first` or `last` (TOO_LARGE). @default 1_000 */
  readonly maxPageSize: number;
  /** Messages per append batch (TOO_LARGE). @default 1_000 */
  readonly maxBatchMessages: number;
  /** Bytes of UTF-8 per `search` query (TOO_LARGE). @default 1_024 */
  readonly maxSearchQueryBytes: number;
  /** Introspection and GraphiQL off, no "Did you mean" hints in errors. @default false */
  readonly production: boolean;
  /** @default 'info' */
  readonly logLevel: (typeof LOG_LEVELS)[number];
  /** Serve Prometheus metrics at `/metrics` (src/metrics/). @default true */
  readonly metrics: boolean;
  /**
   * SHA-256 of a secret that may read `/metrics` (as `Authorization: Bearer <secret>`) besides admin
   * tokens; when set, `/metrics` needs one of them even without tokens. @default null // with tokens,
   * admin tokens only; without, open (loopback only)
   */
  readonly metricsToken: Buffer | null;
  /**
   * Distinct GraphQL operation names kept as metric labels; later ones are counted as `other`.
   * @default 100 // names
   */
  readonly metricsMaxOperationNames: number;
  /** Serve the live dashboard at `/ui/` (`/` redirects there; src/ui/). @default true */
  readonly ui: boolean;
  /**
   * API tokens from `--token` and SESSIONGRAPH_TOKENS, secrets kept as digests (src/auth/token-spec.ts).
   * None, and no tokens file: no token is asked for, and the server must listen on loopback.
   * @default []
   */
  readonly tokens: readonly TokenEntry[];
  /** A file of token specs, read at start and again on SIGHUP or when it changes. @default null */
  readonly tokensFile: string | null;
  /**
   * Browser origins allowed to call the API (CORS and the WebSocket Origin check); `*` allows any.
   * @default [] // pages from loopback and from the server's own origin only
   */
  readonly corsOrigins: readonly string[];
  /**
   * Serve a non-loopback --host without tokens anyway, and answer requests to any Host name
   * (without tokens, only loopback names are answered: DNS rebinding). @default false
   */
  readonly insecure: boolean;
  /** Live connections (WebSockets and SSE streams) one token may hold at once. @default 1_000 */
  readonly maxConnectionsPerToken: number;
}

/** Raised for a value that does not validate; its message names the flag, the variable and the value. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** What `export` and `import` need: the store to open, nothing about serving. */
export type StorageConfig = Pick<
  Config,
  | 'backend'
  | 'dataDir'
  | 'databaseUrl'
  | 'databaseSchema'
  | 'poolSize'
  | 'lockTimeoutMs'
  | 'maxContentBytes'
  | 'logLevel'
>;

const STORAGE_KEYS: ReadonlySet<keyof Config> = new Set<keyof StorageConfig>([
  'backend',
  'dataDir',
  'databaseUrl',
  'databaseSchema',
  'poolSize',
  'lockTimeoutMs',
  'maxContentBytes',
  'logLevel',
]);

interface Setting {
  flag: string;
  key: keyof Config;
  env: string;
  description: string;
  default?: string;
  schema: z.ZodType;
  /** The flag may be given several times; the schema gets every value, in order. */
  repeatable?: true;
  /** Never echo the value in an error message (it holds secrets). */
  secret?: true;
}

const integer = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const ON_OFF: Readonly<Record<string, boolean>> = {
  on: true,
  true: true,
  1: true,
  off: false,
  false: false,
  0: false,
};

/** on/off (true/false, 1/0) from a flag or variable; a boolean from a `--no-*` flag. */
const onOff = z.union([z.boolean(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'boolean') return value;
  const parsed = ON_OFF[value.trim().toLowerCase()];
  if (parsed === undefined) {
    ctx.addIssue({ code: 'custom', message: 'must be on or off' });
    return z.NEVER;
  }
  return parsed;
});

const BOOLEAN_WORDS = new Map<unknown, boolean>([
  ['true', true],
  ['1', true],
  ['yes', true],
  ['on', true],
  ['false', false],
  ['0', false],
  ['no', false],
  ['off', false],
]);

/** `true` from a bare flag; true/false, 1/0, yes/no or on/off from a value or a variable. */
const boolean = () =>
  z
    .union([z.literal(true), z.string().trim().toLowerCase()])
    .refine((v) => v === true || BOOLEAN_WORDS.has(v), 'must be true or false')
    .transform((v) => v === true || BOOLEAN_WORDS.get(v) === true);

/** Token specs (src/auth/token-spec.ts), each value possibly holding several, parsed to digests. */
const tokenSpecs = z.array(z.string()).transform((values, ctx) => {
  try {
    return parseTokenSpecs(values.flatMap(splitTokenSpecs));
  } catch (err) {
    if (!(err instanceof TokenSpecError)) throw err;
    ctx.addIssue({ code: 'custom', message: err.message });
    return z.NEVER;
  }
});

const origins = z.array(z.string()).transform((values, ctx) => {
  const list = values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
  for (const origin of list) {
    if (origin !== '*' && !/^https?:\/\/[^/\s]+$/.test(origin.replace(/\/$/, ''))) {
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(origin)} is not an origin like https://example.com:8080`,
      });
      return z.NEVER;
    }
  }
  return list.map(normalizeOrigin);
});

const SETTINGS: readonly Setting[] = [
  {
    flag: '--backend <kind>',
    key: 'backend',
    env: 'SESSIONGRAPH_BACKEND',
    description: 'storage: sqlite (sessions/sessions.db), jsonl (sessions/<key>.jsonl) or postgres',
    default: 'sqlite',
    schema: z.enum(['sqlite', 'jsonl', 'postgres'], { error: 'must be sqlite, jsonl or postgres' }),
  },
  {
    flag: '--database-url <url>',
    key: 'databaseUrl',
    env: 'SESSIONGRAPH_DATABASE_URL',
    description: 'postgres backend: the connection URL, e.g. postgres://user@127.0.0.1:5432/db',
    schema: z
      .string()
      .trim()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  },
  {
    flag: '--database-schema <name>',
    key: 'databaseSchema',
    env: 'SESSIONGRAPH_DATABASE_SCHEMA',
    description: 'postgres backend: the PostgreSQL schema holding the tables',
    default: 'sessiongraph',
    schema: z
      .string()
      .trim()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lowercase SQL identifier'),
  },
  {
    flag: '--pool-size <connections>',
    key: 'poolSize',
    env: 'SESSIONGRAPH_POOL_SIZE',
    description: 'postgres backend: pooled connections',
    default: '10',
    schema: integer(1, 1_000),
  },
  {
    flag: '--lock-timeout-ms <ms>',
    key: 'lockTimeoutMs',
    env: 'SESSIONGRAPH_LOCK_TIMEOUT_MS',
    description:
      'postgres backend: how long a write waits for a session another writer holds, or for a pooled connection, before UNAVAILABLE',
    default: '5000',
    schema: integer(1, 600_000),
  },
  {
    flag: '--redis-url <url>',
    key: 'redisUrl',
    env: 'SESSIONGRAPH_REDIS_URL',
    description: 'share live events with other instances through Redis, e.g. redis://127.0.0.1:6379',
    schema: z
      .string()
      .trim()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
  },
  {
    flag: '--redis-prefix <prefix>',
    key: 'redisPrefix',
    env: 'SESSIONGRAPH_REDIS_PREFIX',
    description: 'Redis channel prefix; deployments sharing one Redis need distinct ones',
    default: 'sessiongraph',
    schema: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9_.:-]{1,100}$/, 'must be 1 to 100 letters, digits or _.-:'),
  },
  {
    flag: '--data <dir>',
    key: 'dataDir',
    env: 'SESSIONGRAPH_DATA',
    description: 'the workspace folder holding sessions/ (a zeroclaw workspace works as is)',
    default: './data',
    schema: z
      .string()
      .trim()
      .min(1, 'must not be empty')
      .transform((dir) => resolve(dir)),
  },
  {
    flag: '--port <port>',
    key: 'port',
    env: 'SESSIONGRAPH_PORT',
    description: 'TCP port to listen on; 0 picks a free one',
    default: '4000',
    schema: integer(0, 65_535),
  },
  {
    flag: '--host <host>',
    key: 'host',
    env: 'SESSIONGRAPH_HOST',
    description: 'interface to listen on',
    default: '127.0.0.1',
    schema: z.string().trim().min(1, 'must not be empty'),
  },
  {
    flag: '--max-content-bytes <bytes>',
    key: 'maxContentBytes',
    env: 'SESSIONGRAPH_MAX_CONTENT_BYTES',
    description: 'largest message content, in bytes of UTF-8',
    default: String(DEFAULT_LIMITS.maxContentBytes),
    schema: integer(1, 64 * 1_048_576),
  },
  {
    flag: '--session-ttl-hours <hours>',
    key: 'sessionTtlHours',
    env: 'SESSIONGRAPH_SESSION_TTL_HOURS',
    description: 'remove sessions idle longer than this, at start and then hourly (default: never)',
    schema: z
      .string()
      .trim()
      .regex(/^\d+(\.\d+)?$/, 'must be a positive number of hours')
      .transform(Number)
      .pipe(
        z
          .number()
          .positive('must be a positive number of hours')
          .max(MAX_TTL_HOURS, `must be at most ${MAX_TTL_HOURS} hours (1,000 years)`),
      ),
  },
  {
    flag: '--ws-max-payload-bytes <bytes>',
    key: 'wsMaxPayloadBytes',
    env: 'SESSIONGRAPH_WS_MAX_PAYLOAD_BYTES',
    description: 'largest WebSocket message a client may send, in bytes; a larger one closes its socket',
    default: String(DEFAULT_MAX_BODY_BYTES),
    schema: integer(1_024, 1_024 * 1_048_576),
  },
  {
    flag: '--max-subscriptions-per-connection <n>',
    key: 'maxSubscriptionsPerConnection',
    env: 'SESSIONGRAPH_MAX_SUBSCRIPTIONS_PER_CONNECTION',
    description: 'operations running at once on one WebSocket; one more fails with TOO_LARGE',
    default: String(DEFAULT_GRAPHQL_WS_OPTIONS.maxOperationsPerSocket),
    schema: integer(1, 100_000),
  },
  {
    flag: '--ws-message-rate <per-second>',
    key: 'wsMessageRate',
    env: 'SESSIONGRAPH_WS_MESSAGE_RATE',
    description: 'messages (and pings) one WebSocket may send per second; faster closes it (4002)',
    default: String(DEFAULT_GRAPHQL_WS_OPTIONS.messageRatePerSecond),
    schema: integer(1, 1_000_000),
  },
  {
    flag: '--ws-message-burst <messages>',
    key: 'wsMessageBurst',
    env: 'SESSIONGRAPH_WS_MESSAGE_BURST',
    description: 'messages one WebSocket may send at once above --ws-message-rate',
    default: String(DEFAULT_GRAPHQL_WS_OPTIONS.messageBurst),
    schema: integer(1, 1_000_000),
  },
  {
    flag: '--max-body-bytes <bytes>',
    key: 'maxBodyBytes',
    env: 'SESSIONGRAPH_MAX_BODY_BYTES',
    description: 'largest HTTP request body, in bytes; a larger one gets 413 BODY_TOO_LARGE',
    default: String(DEFAULT_MAX_BODY_BYTES),
    schema: integer(1_024, 1_024 * 1_048_576),
  },
  {
    flag: '--max-query-depth <levels>',
    key: 'maxQueryDepth',
    env: 'SESSIONGRAPH_MAX_QUERY_DEPTH',
    description: 'deepest selection nesting, fragments inlined (QUERY_TOO_DEEP)',
    default: String(DEFAULT_QUERY_LIMITS.maxDepth),
    schema: integer(1, 1_000),
  },
  {
    flag: '--max-query-cost <cost>',
    key: 'maxQueryCost',
    env: 'SESSIONGRAPH_MAX_QUERY_COST',
    description: 'largest estimated operation cost (QUERY_TOO_COMPLEX)',
    default: String(DEFAULT_QUERY_LIMITS.maxCost),
    schema: integer(1, 1_000_000_000),
  },
  {
    flag: '--max-aliases <n>',
    key: 'maxAliases',
    env: 'SESSIONGRAPH_MAX_ALIASES',
    description: 'aliases per operation (TOO_MANY_ALIASES)',
    default: String(DEFAULT_QUERY_LIMITS.maxAliases),
    schema: integer(0, 100_000),
  },
  {
    flag: '--max-query-tokens <n>',
    key: 'maxQueryTokens',
    env: 'SESSIONGRAPH_MAX_QUERY_TOKENS',
    description: 'lexical tokens per GraphQL document (TOO_MANY_TOKENS)',
    default: String(DEFAULT_QUERY_LIMITS.maxTokens),
    schema: integer(10, 10_000_000),
  },
  {
    flag: '--max-directives <n>',
    key: 'maxDirectives',
    env: 'SESSIONGRAPH_MAX_DIRECTIVES',
    description: 'directives per operation (TOO_MANY_DIRECTIVES)',
    default: String(DEFAULT_QUERY_LIMITS.maxDirectives),
    schema: integer(0, 100_000),
  },
  {
    flag: '--max-page-size <n>',
    key: 'maxPageSize',
    env: 'SESSIONGRAPH_MAX_PAGE_SIZE',
    description: 'the largest first or last (TOO_LARGE)',
    default: String(DEFAULT_LIMITS.maxPageSize),
    schema: integer(1, 100_000),
  },
  {
    flag: '--max-batch-messages <n>',
    key: 'maxBatchMessages',
    env: 'SESSIONGRAPH_MAX_BATCH_MESSAGES',
    description: 'messages per append batch (TOO_LARGE)',
    default: String(DEFAULT_LIMITS.maxBatchMessages),
    schema: integer(1, 100_000),
  },
  {
    flag: '--max-search-query-bytes <bytes>',
    key: 'maxSearchQueryBytes',
    env: 'SESSIONGRAPH_MAX_SEARCH_QUERY_BYTES',
    description: 'bytes of UTF-8 per search query (TOO_LARGE)',
    default: String(DEFAULT_LIMITS.maxSearchQueryBytes),
    schema: integer(1, 1_048_576),
  },
  {
    flag: '--production [bool]',
    key: 'production',
    env: 'SESSIONGRAPH_PRODUCTION',
    description: 'turn off introspection, GraphiQL and "Did you mean" hints in errors',
    default: 'false',
    schema: boolean(),
  },
  {
    flag: '--log-level <level>',
    key: 'logLevel',
    env: 'SESSIONGRAPH_LOG_LEVEL',
    description: `log threshold: ${LOG_LEVELS.join(', ')}`,
    default: 'info',
    schema: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }),
  },
  {
    flag: '--token <spec>',
    key: 'tokens',
    env: 'SESSIONGRAPH_TOKENS',
    description:
      'an API token, name:secret:scopes[:keyPrefix] (scopes: read, write, admin, comma-separated); repeatable; ' +
      'the variable holds specs separated by spaces or newlines',
    schema: tokenSpecs,
    repeatable: true,
    secret: true,
  },
  {
    flag: '--tokens-file <path>',
    key: 'tokensFile',
    env: 'SESSIONGRAPH_TOKENS_FILE',
    description: 'a file of token specs, one per line (# comments); re-read on SIGHUP and when it changes',
    schema: z
      .string()
      .trim()
      .min(1, 'must not be empty')
      .transform((path) => resolve(path)),
  },
  {
    flag: '--cors-origin <origin>',
    key: 'corsOrigins',
    env: 'SESSIONGRAPH_CORS_ORIGINS',
    description:
      'a browser origin allowed to call the API (CORS, WebSocket Origin), e.g. https://example.com; repeatable or ' +
      'comma-separated; * allows any (default: loopback pages and the server itself)',
    schema: origins,
    repeatable: true,
  },
  {
    flag: '--insecure [on|off]',
    key: 'insecure',
    env: 'SESSIONGRAPH_INSECURE',
    description:
      'without tokens: serve a non-loopback --host anyway and answer any Host name (anyone reaching it may do anything)',
    default: 'false',
    schema: boolean(),
  },
  {
    flag: '--max-connections-per-token <n>',
    key: 'maxConnectionsPerToken',
    env: 'SESSIONGRAPH_MAX_CONNECTIONS_PER_TOKEN',
    description: 'live connections (WebSockets and SSE streams) one token may hold at once',
    default: '1000',
    schema: integer(1, 1_000_000),
  },
  {
    flag: '--metrics <on|off>',
    key: 'metrics',
    env: 'SESSIONGRAPH_METRICS',
    description: 'serve Prometheus metrics at /metrics',
    default: 'on',
    schema: onOff,
  },
  {
    flag: '--metrics-token <secret>',
    key: 'metricsToken',
    env: 'SESSIONGRAPH_METRICS_TOKEN',
    description:
      'a secret (16+ characters, or sha256=<hex>) that may read /metrics besides admin tokens; when set, ' +
      '/metrics needs one even without tokens',
    schema: z.string().transform((secret, ctx) => {
      try {
        return secretDigest(secret.trim(), '--metrics-token');
      } catch (err) {
        if (!(err instanceof TokenSpecError)) throw err;
        ctx.addIssue({ code: 'custom', message: err.message });
        return z.NEVER;
      }
    }),
    secret: true,
  },
  {
    flag: '--metrics-max-operation-names <n>',
    key: 'metricsMaxOperationNames',
    env: 'SESSIONGRAPH_METRICS_MAX_OPERATION_NAMES',
    description: 'distinct operation names kept as metric labels; later ones are counted as other',
    default: String(DEFAULT_MAX_OPERATION_NAMES),
    schema: integer(0, 10_000),
  },
  {
    flag: '--ui <on|off>',
    key: 'ui',
    env: 'SESSIONGRAPH_UI',
    description: 'serve the live dashboard at /ui/ (/ redirects there)',
    default: 'on',
    schema: onOff,
  },
];

const toOption = (s: Setting): Option => {
  const option = new Option(s.flag, s.description).env(s.env);
  if (s.repeatable) {
    option.argParser((value: string, previous: unknown) => [
      ...(Array.isArray(previous) ? previous : []),
      value,
    ]);
  }
  return s.default === undefined ? option : option.default(s.default);
};

/** The `serve` options, each readable from its `SESSIONGRAPH_*` variable. */
export function serveOptions(): Option[] {
  return [
    ...SETTINGS.map(toOption),
    new Option('--no-metrics', 'the same as --metrics off'),
    new Option('--no-ui', 'the same as --ui off'),
  ];
}

/** A client command's API token (`tail`): `--token`, or SESSIONGRAPH_TOKEN. */
export function clientTokenOption(): Option {
  return new Option(
    '--token <secret>',
    "the API token, when the server requires one (a spec's secret part)",
  ).env('SESSIONGRAPH_TOKEN');
}

/** The options that choose and open a store (`export`, `import`), from the same variables. */
export function storageOptions(): Option[] {
  return SETTINGS.filter((s) => STORAGE_KEYS.has(s.key)).map(toOption);
}

/** Commander's attribute name for a flag: `--max-content-bytes <bytes>` -> `maxContentBytes`. */
function attributeOf(flag: string): string {
  const name = flag.split(' ')[0]!.replace(/^--/, '');
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Validates what commander parsed into a frozen Config.
 * @param values commander's `opts()`: strings from flags, environment or defaults
 * @param sourceOf where a value came from, to name it in errors
 */
export function parseConfig(
  values: Record<string, unknown>,
  sourceOf: (attribute: string) => string | undefined = () => undefined,
): Config {
  return parseSettings(SETTINGS, values, sourceOf) as unknown as Config;
}

/** parseConfig for the storage options only (storageOptions()). */
export function parseStorageConfig(
  values: Record<string, unknown>,
  sourceOf: (attribute: string) => string | undefined = () => undefined,
): StorageConfig {
  const settings = SETTINGS.filter((s) => STORAGE_KEYS.has(s.key));
  return parseSettings(settings, values, sourceOf) as unknown as StorageConfig;
}

/** What `migrate` needs: the workspace, and how much to log. */
export type MigrateConfig = Pick<Config, 'dataDir' | 'logLevel'>;

const MIGRATE_KEYS: ReadonlySet<keyof Config> = new Set<keyof MigrateConfig>(['dataDir', 'logLevel']);

/** The `migrate` options (`--data`, `--log-level`), from the same variables. */
export function migrateOptions(): Option[] {
  return SETTINGS.filter((s) => MIGRATE_KEYS.has(s.key)).map(toOption);
}

/** parseConfig for the migrate options only (migrateOptions()). */
export function parseMigrateConfig(
  values: Record<string, unknown>,
  sourceOf: (attribute: string) => string | undefined = () => undefined,
): MigrateConfig {
  const settings = SETTINGS.filter((s) => MIGRATE_KEYS.has(s.key));
  return parseSettings(settings, values, sourceOf) as unknown as MigrateConfig;
}

/** Every `SESSIONGRAPH_*` variable with its flag and meaning, for `sessiongraph --help`. */
export function environmentVariables(): Array<{ env: string; flag: string; description: string }> {
  return SETTINGS.map((s) => ({ env: s.env, flag: s.flag.split(' ')[0]!, description: s.description }));
}

function parseSettings(
  settings: readonly Setting[],
  values: Record<string, unknown>,
  sourceOf: (attribute: string) => string | undefined,
): Readonly<Record<string, unknown>> {
  const config: Record<string, unknown> = { databaseUrl: null };
  if (settings.some((s) => s.key === 'metricsToken')) config.metricsToken = null;
  if (settings.some((s) => s.key === 'sessionTtlHours')) config.sessionTtlHours = null;
  if (settings.some((s) => s.key === 'redisUrl')) config.redisUrl = null;
  const problems: string[] = [];
  for (const s of settings) {
    const attribute = attributeOf(s.flag);
    const raw = values[attribute];
    if (raw === undefined) continue;
    const parsed = s.schema.safeParse(raw);
    if (parsed.success) {
      config[s.key] = parsed.data;
      continue;
    }
    const origin = sourceOf(attribute) === 'env' ? s.env : s.flag.split(' ')[0];
    const got = s.secret ? '' : ` (got ${JSON.stringify(raw)})`;
    problems.push(`${origin}: ${parsed.error.issues[0]?.message ?? 'invalid'}${got}`);
  }
  if (settings.some((s) => s.key === 'tokens')) {
    config.tokens ??= [];
    config.tokensFile ??= null;
    config.corsOrigins ??= [];
    const open = (config.tokens as unknown[]).length === 0 && config.tokensFile === null;
    if (open && typeof config.host === 'string' && !isLoopbackHost(config.host) && config.insecure !== true) {
      problems.push(
        `--host ${config.host}: not a loopback address, and no token is configured, so anyone who reaches ` +
          'the port could read and write every session; configure --token or --tokens-file, or pass ' +
          '--insecure to serve without tokens anyway',
      );
    }
  }
  if (config.backend === 'postgres' && config.databaseUrl === null) {
    problems.push('--database-url (SESSIONGRAPH_DATABASE_URL): required with --backend postgres');
  }
  // a message as large as allowed must fit in a request, over HTTP and over a WebSocket
  const content = config.maxContentBytes as number | undefined;
  for (const [key, name] of [
    ['maxBodyBytes', '--max-body-bytes (SESSIONGRAPH_MAX_BODY_BYTES)'],
    ['wsMaxPayloadBytes', '--ws-max-payload-bytes (SESSIONGRAPH_WS_MAX_PAYLOAD_BYTES)'],
  ] as const) {
    const size = config[key] as number | undefined;
    if (size !== undefined && content !== undefined && size < content) {
      problems.push(`${name}: must be at least --max-content-bytes (${content}); got ${size}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  return Object.freeze(config);
}
