/**
 * THE storage contract. Every backend (SQLite, JSONL, PostgreSQL) implements `SessionBackend`
 * with the same semantics and the same errors (src/errors.ts); test/backends/contract.ts proves it.
 *
 * Async everywhere so that network stores fit; an embedded backend may work synchronously inside.
 * Nothing here knows about GraphQL, HTTP or events.
 */

/** A message as a client hands it in: zeroclaw's `ChatMessage` (role, content). */
export interface NewMessage {
  role: string;
  content: string;
  /**
   * Imports only (copy-between-backends, src/backends/copy.ts): when the message was first stored,
   * RFC 3339, so a copied history keeps its timeline. SQLite stores its canonical text, PostgreSQL
   * truncates it to microseconds; JSONL has no message times and ignores it. Not part of the
   * idempotency hash. @default now, stamped by the backend
   */
  createdAt?: string | undefined;
}

/** A stored message. */
export interface StoredMessage {
  sessionKey: string;
  /**
   * Increases within the session; the page and feed cursor.
   * SQLite/PostgreSQL: the row id (never reused). JSONL: the 1-based position among readable
   * lines (reused after removeLast, so cursors also carry a digest of the message).
   */
  seq: number;
  role: string;
  content: string;
  /** chrono-style RFC 3339 (`...+00:00`) as stored, or null where the backend cannot know it (JSONL). */
  createdAt: string | null;
}

export interface SessionInfo {
  /** The raw key, never the sanitised file stem. */
  key: string;
  name: string | null;
  createdAt: string | null;
  lastActivityAt: string | null;
  /** Readable messages. */
  messageCount: number;
  /** seq of the last readable message, null when the session is empty. */
  lastSeq: number | null;
  /** Entries that cannot be read (JSONL corrupt lines); null where the backend does not count them. */
  unreadableCount: number | null;
}

/**
 * Relay-style window over seqs. `first` pages forward from `afterSeq`; `last` pages backward from
 * `beforeSeq`; both bounds may be combined with either. Neither `first` nor `last`: the first
 * `DEFAULT_PAGE_SIZE`. Both: InvalidInputError.
 *
 * hasNextPage/hasPreviousPage: on a forward page, hasNextPage says more messages remain inside the
 * window and hasPreviousPage says a message exists at or before `afterSeq`; on a backward page the
 * mirror image (hasPreviousPage: more inside the window; hasNextPage: a message exists at or after
 * `beforeSeq`).
 */
export interface MessagePageArgs {
  first?: number;
  afterSeq?: number;
  last?: number;
  beforeSeq?: number;
}

export interface Page<T> {
  /** Always in ascending order (seq, or the requested session order), also for `last`. */
  items: T[];
  hasNextPage: boolean;
  hasPreviousPage: boolean;
}

export const DEFAULT_PAGE_SIZE = 50;

export interface SessionFilter {
  keyPrefix?: string;
  /** The key's text before its first `_` (telegram, discord, slack, gw, rpc ...). */
  channel?: string;
  /** Inclusive lower bound on lastActivityAt (canonical timestamp text). */
  activeSince?: string;
  /** Exclusive upper bound on lastActivityAt (canonical timestamp text). */
  activeBefore?: string;
}

export type SessionOrder = 'LAST_ACTIVITY_DESC' | 'LAST_ACTIVITY_ASC' | 'KEY_ASC' | 'KEY_DESC';

/** Position in a session listing: the ordered value and the key as tie-breaker. */
export interface SessionCursor {
  key: string;
  lastActivityAt: string | null;
}

export interface SessionPageArgs {
  filter?: SessionFilter;
  /** @default 'LAST_ACTIVITY_DESC' */
  order?: SessionOrder;
  first?: number;
  after?: SessionCursor;
  last?: number;
  before?: SessionCursor;
}

export interface SearchFilter {
  sessionKey?: string;
  keyPrefix?: string;
  role?: string;
  /** Inclusive, canonical timestamp text. InvalidInputError on a backend without message times. */
  since?: string;
  /** Exclusive, canonical timestamp text. InvalidInputError on a backend without message times. */
  until?: string;
}

export type SearchOrder = 'RELEVANCE' | 'NEWEST';

export interface SearchArgs {
  /** The query language of src/backends/search-query.ts; never an FTS syntax error. */
  query: string;
  filter?: SearchFilter;
  /** @default 'RELEVANCE' */
  order?: SearchOrder;
  first?: number;
  /** An opaque cursor from a previous hit of the same query, filter and order. */
  after?: string;
}

/** Snippet match markers: the schema layer turns them into `<mark>` or ranges. */
export const SNIPPET_OPEN = '\u0002';
export const SNIPPET_CLOSE = '\u0003';

export interface SearchHit {
  message: StoredMessage;
  /** Higher is better. */
  score: number;
  /** A short excerpt of the content with every match wrapped in SNIPPET_OPEN/SNIPPET_CLOSE. */
  snippet: string;
  /** Opaque: pass as `after` to continue after this hit. */
  cursor: string;
}

export interface SearchPage {
  hits: SearchHit[];
  hasNextPage: boolean;
}

export interface AppendOptions {
  /**
   * Idempotency key, scoped to the session. A retry with the same id and the same messages
   * returns the first result (`replayed: true`) and stores nothing; the same id with other
   * messages is a ConflictError. A record counts only while the messages it stored are still in
   * the session at their seqs, unchanged: after a delete (ours, zeroclaw's, another instance's)
   * or a removal, the id is new again and the retry is stored in the session as it is then.
   */
  clientMessageId?: string;
  /**
   * Optimistic concurrency: fail with ConflictError unless the session's last seq is this value
   * (`null`: the session must be empty or absent). Undefined: no guard.
   */
  expectedLastSeq?: number | null;
}

export interface AppendResult {
  messages: StoredMessage[];
  session: SessionInfo;
  replayed: boolean;
  /**
   * The seq of the session's last readable message before this batch (0: none), read where the
   * append committed (under SQLite's write lock, JSONL's file lock, PostgreSQL's session row lock),
   * so the live feed knows exactly which message its first one follows (src/events/session-order.ts).
   * Only where a seq is never reused (SQLite, PostgreSQL): a JSONL seq is a position, reused after
   * a removal. Absent on a replay, and where not given: the feed then checks the store.
   */
  previousSeq?: number;
}

export interface RemoveLastOptions {
  /** Refuse (ConflictError) unless the last message's seq is this value. */
  expectedLastSeq?: number;
}

export interface RemoveLastResult {
  /** null when the session holds no message. */
  removed: StoredMessage | null;
  session: SessionInfo;
}

export interface CompactResult {
  /** Unreadable entries dropped. Readable messages are never lost. */
  dropped: number;
  session: SessionInfo;
}

export interface BackendCapabilities {
  /** Messages carry createdAt; time filters work. */
  messageTimestamps: boolean;
  /** Search is ranked by an index (bm25 or ts_rank), not by a scan. */
  rankedSearch: boolean;
  /** seq values are never reused (row ids); false for JSONL positions. */
  stableSeq: boolean;
}

export interface BackendInfo {
  kind: 'sqlite' | 'jsonl' | 'postgres';
  /** The engine's version, e.g. SQLite's `sqlite_version()`. */
  version: string;
  capabilities: BackendCapabilities;
}

/** Caps every backend enforces the same way (TooLargeError / InvalidInputError). */
export interface StoreLimits {
  /** @default 1_048_576 // bytes of UTF-8 per message content */
  maxContentBytes: number;
  /** @default 1_000 // messages per append batch */
  maxBatchMessages: number;
  /** @default 1_024 // bytes of UTF-8 per session key */
  maxKeyBytes: number;
  /** @default 1_000 // first/last per page */
  maxPageSize: number;
  /** @default 1_024 // bytes of UTF-8 per search query: a search, not a pasted document */
  maxSearchQueryBytes: number;
}

export const DEFAULT_LIMITS: StoreLimits = Object.freeze({
  maxContentBytes: 1_048_576,
  maxBatchMessages: 1_000,
  maxKeyBytes: 1_024,
  maxPageSize: 1_000,
  maxSearchQueryBytes: 1_024,
});

/** A session's name and times as another store recorded them (imports). */
export interface SessionRecord {
  name: string | null;
  /** RFC 3339; null keeps the target's own (now, for a new session). */
  createdAt: string | null;
  /** RFC 3339; null keeps the target's own (now, for a new session). */
  lastActivityAt: string | null;
}

/**
 * Where a session stood right after a change, when the backend knows it from the change itself
 * (PostgreSQL's notifications carry it). Without it, events take the session as read later, which
 * later writes may already have moved.
 */
export interface ExternalPosition {
  messageCount: number;
  /** null: the session holds no message. */
  lastSeq: number | null;
}

/**
 * A write another process made to the store (a zeroclaw agent sharing the workspace, or another
 * sessiongraph instance on the same PostgreSQL schema), as `watchExternalChanges` reports it. Seqs
 * are the backend's own: row ids, or JSONL positions.
 */
export type ExternalChange =
  /** Messages with afterSeq < seq <= throughSeq were added; nothing at or before afterSeq moved. */
  | { kind: 'appended'; sessionKey: string; afterSeq: number; throughSeq: number; after?: ExternalPosition }
  /** Exactly the session's last messages vanished, these seqs (highest first); the rest is unchanged. */
  | { kind: 'removed'; sessionKey: string; seqs: number[]; after?: ExternalPosition }
  /** The messages changed in any other way (content rewritten, removed mid-way, not comparable). */
  | { kind: 'rewritten'; sessionKey: string }
  /** The session was compacted; its readable messages did not change (PostgreSQL only). */
  | { kind: 'compacted'; sessionKey: string }
  | { kind: 'deleted'; sessionKey: string }
  | { kind: 'renamed'; sessionKey: string; name: string | null };

export interface ExternalWatchOptions {
  /**
   * How often to look. SQLite: one `PRAGMA data_version` per interval while nothing changes.
   * JSONL: the sweep behind fs.watch, which stats recently changed files each interval and every
   * file at least once a minute. PostgreSQL: notifications arrive as they commit; this is how
   * often the listening connection is checked and its catch-up point moved forward.
   * @default 50 // milliseconds for SQLite; 1_000 for JSONL; 5_000 for PostgreSQL
   */
  intervalMs?: number;
}

export interface ExternalWatch {
  /** Stops watching; no change is reported after it returns. */
  close(): void;
}

export interface SessionBackend {
  info(): BackendInfo;

  append(key: string, messages: NewMessage[], options?: AppendOptions): Promise<AppendResult>;
  messages(key: string, args?: MessagePageArgs): Promise<Page<StoredMessage>>;
  /** One message by seq, or null. */
  message(key: string, seq: number): Promise<StoredMessage | null>;
  /** The last message of each key that has one (batch form, for dataloaders). */
  lastMessages(keys: readonly string[]): Promise<Map<string, StoredMessage>>;
  /** Unicode code points of all readable content per key (for estimatedTokens). */
  characterCounts(keys: readonly string[]): Promise<Map<string, number>>;

  session(key: string): Promise<SessionInfo | null>;
  sessions(args?: SessionPageArgs): Promise<Page<SessionInfo>>;

  /** NotFoundError for an unknown session. */
  removeLast(key: string, options?: RemoveLastOptions): Promise<RemoveLastResult>;
  /** NotFoundError for an unknown session. */
  compact(key: string): Promise<CompactResult>;
  /** NotFoundError for an unknown session. Removes messages, metadata and idempotency records. */
  deleteSession(key: string): Promise<void>;
  /** Creates the session (no messages) when absent. `null` or empty clears the name. */
  renameSession(key: string, name: string | null): Promise<SessionInfo>;
  /** Removes every session whose lastActivityAt is older than now - ttlHours, in one transaction. */
  cleanupStale(ttlHours: number): Promise<string[]>;
  /**
   * Imports only: sets the name and times of a session (created, with no messages, when absent) to
   * what its source recorded, so a copied session keeps its place in the activity order. Call it
   * after the session's messages are in: appends move lastActivityAt. Optional: a backend whose
   * session times are not stored (JSONL: file times) leaves it out, and a copy falls back to
   * renameSession. PostgreSQL truncates the times to microseconds.
   */
  restoreSession?(key: string, record: SessionRecord): Promise<SessionInfo>;

  search(args: SearchArgs): Promise<SearchPage>;

  /**
   * Optional: reports what OTHER processes write to the same store, never this backend's own
   * writes. `listener` is called synchronously, in the order the changes were found (per session:
   * the order they happened), and must neither throw nor block. PostgreSQL reports the writes of
   * other sessiongraph instances on the same schema (LISTEN/NOTIFY, pg-watcher.ts).
   */
  watchExternalChanges?(
    listener: (change: ExternalChange) => void,
    options?: ExternalWatchOptions,
  ): ExternalWatch;

  /**
   * Optional: checks that the store is still there and answers (readiness probes call it), and
   * throws UnavailableError saying why not: PostgreSQL refusing connections, the SQLite file or the
   * JSONL folder removed or replaced under a running server. Cheap: one round trip or a stat.
   */
  ping?(): Promise<void>;

  close(): Promise<void>;
}
