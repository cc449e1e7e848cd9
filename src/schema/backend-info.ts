import type { BackendInfo as Info } from '../backends/backend.js';
import { builder } from './builder.js';

const BackendKindEnum = builder.enumType('BackendKind', {
  description: 'The storage engine behind this server.',
  values: {
    SQLITE: { value: 'sqlite', description: "zeroclaw's `sessions/sessions.db` (WAL, FTS5)." },
    JSONL: { value: 'jsonl', description: "zeroclaw's `sessions/<key>.jsonl` files." },
    POSTGRES: { value: 'postgres', description: 'PostgreSQL, for several server instances.' },
  } as const satisfies Record<string, { value: Info['kind']; description: string }>,
});

const BackendCapabilities = builder.simpleObject('BackendCapabilities', {
  description: 'What this backend can do; clients adapt their UI to it.',
  fields: (t) => ({
    messageTimestamps: t.boolean({
      description: 'Messages carry `createdAt`, and search can filter by time.',
    }),
    rankedSearch: t.boolean({ description: 'Search is ranked by an index (bm25), not by a scan.' }),
    stableSeq: t.boolean({
      description: 'A seq is never reused (row ids); false for JSONL, whose seq is a line position.',
    }),
  }),
});

const BackendLimits = builder.simpleObject('BackendLimits', {
  description: 'Caps this server enforces; an input over one is a TOO_LARGE error.',
  fields: (t) => ({
    maxContentBytes: t.int({ description: 'Bytes of UTF-8 per message content.' }),
    maxBatchMessages: t.int({ description: 'Messages per `appendMessages` batch.' }),
    maxKeyBytes: t.int({ description: 'Bytes of UTF-8 per session key.' }),
    maxPageSize: t.int({ description: 'The largest `first` or `last`.' }),
    maxSearchQueryBytes: t.int({ description: 'Bytes of UTF-8 per `search` query.' }),
  }),
});

const BackendInfo = builder.simpleObject('BackendInfo', {
  description: 'The storage behind this server.',
  fields: (t) => ({
    kind: t.field({ type: BackendKindEnum, description: 'The engine.' }),
    version: t.string({ description: "The engine's version, e.g. SQLite's `sqlite_version()`." }),
    capabilities: t.field({ type: BackendCapabilities, description: 'What the engine can do.' }),
    limits: t.field({ type: BackendLimits, description: 'The caps in force.' }),
  }),
});

builder.queryField('backend', (t) =>
  t.field({
    type: BackendInfo,
    description: 'Which storage serves this API, what it can do and its limits.',
    resolve: (_root, _args, ctx) => ({ ...ctx.backend.info(), limits: ctx.limits }),
  }),
);
