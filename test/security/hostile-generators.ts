/**
 * Attack material for the hostile-input suite, generated from a seeded PRNG (replayable) plus
 * handwritten nasty values: session keys, search queries, values of the wrong type, documents
 * built to hit every parser and validator edge, and raw HTTP bodies.
 */

/** A seeded source of choices. */
export type Rng = () => number;

export const int = (r: Rng, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
export const pick = <T>(r: Rng, items: readonly T[]): T => items[Math.floor(r() * items.length)]!;

/** Pieces of keys that break naive file, URL, SQL or terminal handling; all legal in a key. */
const KEY_PIECES = [
  '../',
  '..\\',
  '../../../../etc/passwd',
  '/',
  '\\',
  '.',
  '..',
  '%2e%2e%2f',
  '~',
  'CON',
  'NUL',
  'aux.txt',
  ' ',
  '\t',
  '\n',
  '\r',
  '\u0001',
  '\u001b[31m',
  '\u007f',
  '\u202e',
  '\u200b',
  '\ufeff',
  'e\u0301',
  'é',
  '日本',
  '🙂',
  'Ω',
  '*',
  '?',
  ':',
  '"',
  "'",
  '`',
  ';',
  '--',
  "' OR '1'='1",
  '; DROP TABLE sessions; --',
  'session_key',
  '%',
  '_',
  '$',
  '{}',
  '<script>',
  'telegram_',
  'slack/thread:1',
  'a',
  'key',
];

/** A key every backend must accept: 1 to `maxBytes` bytes of UTF-8, no NUL, no lone surrogate. */
export function legalKey(r: Rng, maxBytes = 1_024): string {
  let key = '';
  const pieces = int(r, 1, 8);
  for (let i = 0; i < pieces; i++) key += pick(r, KEY_PIECES);
  if (r() < 0.08) key += pick(r, ['a', 'é', '日', '-']).repeat(int(r, 100, 400));
  while (Buffer.byteLength(key) > maxBytes) key = [...key].slice(0, -1).join('');
  return key.length === 0 ? '..' : key;
}

/** A key every backend must refuse, and why. */
export function illegalKey(r: Rng): { key: string; code: 'INVALID' | 'TOO_LARGE' } {
  switch (int(r, 0, 4)) {
    case 0:
      return { key: '', code: 'INVALID' };
    case 1:
      return { key: `${legalKey(r, 500)}\u0000${legalKey(r, 100)}`, code: 'INVALID' };
    case 2:
      return { key: `${legalKey(r, 500)}\ud800`, code: 'INVALID' };
    case 3:
      return { key: `\udfff${legalKey(r, 100)}`, code: 'INVALID' };
    default:
      return { key: `${pick(r, ['../', 'k', 'é'])}${'x'.repeat(int(r, 1_025, 10_240))}`, code: 'TOO_LARGE' };
  }
}

/** Every character FTS5 and tsquery treat specially, and their keywords. */
export const FTS_SPECIALS = [
  '"',
  '*',
  '^',
  ':',
  '(',
  ')',
  '-',
  '+',
  '{',
  '}',
  '[',
  ']',
  "'",
  '\\',
  '/',
  '!',
  '&',
  '|',
  '<',
  '>',
  '<->',
  '.',
  ',',
  ';',
  '%',
  '_',
  '~',
  'NEAR',
  'NEAR/2',
  'NEAR(a b, 3)',
  'AND',
  'OR',
  'NOT',
  'content:',
  'session_key:',
  '{content}:',
  'rank',
  'bm25',
  '\u0000',
  '\u0002',
  '\u0003',
];

const WORDS = ['hello', 'deploy', 'failed', 'ünïcödé', '日本語', 'x', 'a1', 'OR', 'or', 'and'];

/** A search query mixing words and special characters; `maxBytes` keeps it under the limit. */
export function hostileSearch(r: Rng, maxBytes = 1_024): string {
  const parts: string[] = [];
  const n = int(r, 1, 12);
  for (let i = 0; i < n; i++) {
    parts.push(r() < 0.5 ? pick(r, FTS_SPECIALS) : pick(r, WORDS));
    if (r() < 0.3) parts.push(pick(r, ['', ' ', '  ', '\t']));
  }
  let query = parts.join(r() < 0.5 ? ' ' : '');
  while (Buffer.byteLength(query) > maxBytes) query = query.slice(0, -1);
  return query;
}

/** A value of any JSON type, nested at most `depth` deep. */
export function anyValue(r: Rng, depth = 2): unknown {
  switch (int(r, 0, depth > 0 ? 8 : 5)) {
    case 0:
      return null;
    case 1:
      return pick(r, [true, false]);
    case 2:
      return pick(r, [0, -1, 1.5, 2 ** 31, -(2 ** 31) - 1, 2 ** 53 + 1, 1e308, -0, 1e-300]);
    case 3:
      return pick(r, ['', 'x', '1', 'null', 'NaN', '-1', '9'.repeat(40), '\u0000', '\ud800', 'true']);
    case 4:
      return legalKey(r, 64);
    case 5:
      return hostileSearch(r, 64);
    case 6:
      return Array.from({ length: int(r, 0, 4) }, () => anyValue(r, depth - 1));
    default:
      return Object.fromEntries(
        Array.from({ length: int(r, 0, 4) }, () => [
          pick(r, ['k', 'first', 'sessionKey', '__proto__', 'constructor', 'a b']),
          anyValue(r, depth - 1),
        ]),
      );
  }
}

/** Reads whose variables take hostile values; the store must not change. */
export const READ_DOCUMENTS = [
  `query ($k: String!, $n: Int, $a: String) { session(key: $k) { key name messageCount lastSeq
     messages(first: $n, after: $a) { edges { cursor node { id seq role content } } pageInfo { hasNextPage } } } }`,
  `query ($k: String!, $n: Int, $a: String) { session(key: $k) { messages(last: $n, before: $a) { edges { cursor } } } }`,
  `query ($k: String, $n: Int, $a: String) { sessions(first: $n, after: $a, filter: { keyPrefix: $k }) {
     edges { cursor node { key channel } } pageInfo { hasNextPage endCursor } } }`,
  `query ($k: String, $n: Int) { sessions(last: $n, filter: { channel: $k }) { edges { cursor } } }`,
  `query ($q: String!, $n: Int, $a: String, $k: String, $p: String, $r: String) {
     search(query: $q, first: $n, after: $a, filter: { sessionKey: $k, keyPrefix: $p, role: $r }) {
       edges { cursor node { score snippet snippetText snippetMatches { start end } message { seq content } } } } }`,
  `query ($id: ID!) { node(id: $id) { id ... on Session { key } ... on Message { seq content } } }`,
];

/** Writes that must be refused for the given illegal key (or a key that does not exist). */
export const DESTRUCTIVE_DOCUMENTS = [
  `mutation ($k: String!) { removeLastMessage(input: { sessionKey: $k }) { __typename ... on Error { code } } }`,
  `mutation ($k: String!) { deleteSession(input: { sessionKey: $k }) { __typename ... on Error { code } } }`,
  `mutation ($k: String!) { compactSession(input: { sessionKey: $k }) { __typename ... on Error { code } } }`,
];

export const APPEND = `mutation ($k: String!, $r: String!, $c: String!) {
  appendMessage(input: { sessionKey: $k, role: $r, content: $c }) {
    __typename ... on AppendMessagePayload { appendedMessage { seq content } } ... on Error { code message } } }`;

export const APPEND_MANY = `mutation ($k: String!, $m: [NewMessageInput!]!) {
  appendMessages(input: { sessionKey: $k, messages: $m }) {
    __typename ... on AppendMessagesPayload { appendedMessages { seq content } } ... on Error { code message } } }`;

export const RENAME = `mutation ($k: String!, $n: String) { renameSession(input: { sessionKey: $k, name: $n }) {
  __typename ... on RenameSessionPayload { session { key name } } ... on Error { code message } } }`;

export const REMOVE_LAST = `mutation ($k: String!) { removeLastMessage(input: { sessionKey: $k }) {
  __typename ... on RemoveLastMessagePayload { removedMessage { seq content } } ... on Error { code message } } }`;

/** Documents built to strain the parser and the validators. */
export function hostileDocument(r: Rng): string {
  switch (int(r, 0, 11)) {
    case 0: {
      const depth = int(r, 13, 400);
      return `{ ${'sessions { edges { node { '.repeat(Math.ceil(depth / 3))}key${' } } }'.repeat(Math.ceil(depth / 3))} }`;
    }
    case 1: {
      const n = int(r, 31, 3_000);
      return `{ ${Array.from({ length: n }, (_, i) => `a${i}: search(query: "x") { edges { cursor } }`).join(' ')} }`;
    }
    case 2: {
      const n = int(r, 2, 30);
      const spreads = Array.from(
        { length: n },
        (_, i) => `fragment F${i} on Query { ...F${(i + 1) % n} backend { kind } }`,
      );
      return `query { ...F0 } ${spreads.join(' ')}`;
    }
    case 3:
      return `query { ...F } fragment F on Query { ...F }`;
    case 4:
      return `{ backend { ${'kind '.repeat(int(r, 2_001, 20_000))} } }`;
    case 5:
      return `{ backend ${'@include(if: true) '.repeat(int(r, 51, 500))} { kind } }`;
    case 6:
      return `{ session(key: "${'x'.repeat(int(r, 1_025, 200_000))}") { key } }`;
    case 7:
      return pick(r, [
        '',
        ' ',
        '{',
        '}',
        '{ }',
        'query',
        'mutation',
        'subscription',
        '{ __typename',
        '{ sessions(first: ) { edges } }',
        '{ unknownField }',
        '{ sessions { nope } }',
        '{ session(key: 1) { key } }',
        '{ session { key } }',
        '{ sessions(first: "ten") { edges { cursor } } }',
        '{ sessions(first: -1) { edges { cursor } } }',
        '{ sessions(first: 2147483648) { edges { cursor } } }',
        '{ sessions(first: 99999999999999999999) { edges { cursor } } }',
        'query A { backend { kind } } query A { backend { kind } }',
        'query A { backend { kind } } query B { backend { kind } }',
        '{ backend { kind } } { backend { kind } }',
        'fragment F on Nope { x } { ...F }',
        '{ ...on Query { backend { kind } } }',
        '{ backend { kind(arg: 1) } }',
        '{ backend { kind @nope } }',
        'query ($v: Nope) { backend { kind } }',
        'query ($v: String!) { backend { kind } }',
        'subscription { sessionEvents(sessionKey: "k") { __typename } sessionActivity { __typename } }',
        '"""',
        '"\\u{D800}"',
        '{ session(key: "\\u0000") { key } }',
        '{ session(key: "\\uD800") { key } }',
        `{ session(key: """${'\\"""'.repeat(50)}""") { key } }`,
        '#'.repeat(10_000),
        '{ '.repeat(5_000),
        '['.repeat(10_000),
        '\u0000\u0001\u0002',
        '\ufeff{ backend { kind } }',
        'query { __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }',
      ]);
    case 8:
      return `query (${Array.from({ length: int(r, 1, 300) }, (_, i) => `$v${i}: String`).join(' ')}) { backend { kind } }`;
    case 9: {
      const n = int(r, 1, 60);
      return `{ ${'backend { '.repeat(1)}${Array.from({ length: n }, () => pick(r, ['kind', 'version', '__typename', 'limits { maxPageSize }'])).join(' ')} } }`;
    }
    case 10: {
      const garbage = Array.from({ length: int(r, 1, 60) }, () =>
        pick(r, [
          '{',
          '}',
          '(',
          ')',
          ':',
          '$',
          '@',
          '...',
          'on',
          'query',
          '"',
          '!',
          '[',
          ']',
          '=',
          'x',
          '1',
          '\n',
          '#',
          '|',
          '&',
        ]),
      ).join(pick(r, ['', ' ']));
      return garbage;
    }
    default:
      return `{ sessions(first: ${int(r, 200, 1_000)}) { edges { node { messages(first: ${int(r, 200, 1_000)}) { edges { node { content } } } } } } }`;
  }
}

/** Raw HTTP requests: bodies and content types no client library would send. */
export function nastyBodies(): Array<{
  contentType: string | null;
  body: string | Uint8Array;
  method?: string;
}> {
  const json = 'application/json';
  const huge = 'x'.repeat(5_000_000);
  const nested = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
  const nestedObject = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
  return [
    { contentType: json, body: '' },
    { contentType: json, body: ' ' },
    { contentType: json, body: 'null' },
    { contentType: json, body: 'true' },
    { contentType: json, body: '0' },
    { contentType: json, body: '"a string"' },
    { contentType: json, body: '[]' },
    { contentType: json, body: '[1,2,3]' },
    { contentType: json, body: '[{"query":"{ backend { kind } }"},{"query":"{ backend { kind } }"}]' },
    { contentType: json, body: nested(100_000) },
    { contentType: json, body: nestedObject(100_000) },
    { contentType: json, body: `{"query":"{ backend { kind } }","variables":${nestedObject(50_000)}}` },
    { contentType: json, body: '{' },
    { contentType: json, body: '{"query":' },
    { contentType: json, body: '{"query":"{ backend { kind } }"' },
    { contentType: json, body: '{"query":"{ backend { kind } }"}}' },
    { contentType: json, body: '{"query":"{ backend { kind } }"} trailing' },
    { contentType: json, body: "{'query':'{ backend { kind } }'}" },
    { contentType: json, body: '{"query":null}' },
    { contentType: json, body: '{"query":1}' },
    { contentType: json, body: '{"query":["{ backend { kind } }"]}' },
    { contentType: json, body: '{"query":{"a":1}}' },
    { contentType: json, body: '{}' },
    { contentType: json, body: '{"variables":{}}' },
    { contentType: json, body: '{"query":"{ backend { kind } }","variables":"nope"}' },
    { contentType: json, body: '{"query":"{ backend { kind } }","variables":[1]}' },
    { contentType: json, body: '{"query":"{ backend { kind } }","variables":1}' },
    { contentType: json, body: '{"query":"{ backend { kind } }","operationName":1}' },
    { contentType: json, body: '{"query":"{ backend { kind } }","operationName":"Nope"}' },
    { contentType: json, body: '{"query":"{ backend { kind } }","extensions":"x"}' },
    {
      contentType: json,
      body: '{"query":"{ backend { kind } }","extensions":{"persistedQuery":{"version":1,"sha256Hash":"x"}}}',
    },
    { contentType: json, body: '{"query":"{ backend { kind } }","__proto__":{"polluted":1}}' },
    {
      contentType: json,
      body: '{"query":"{ backend { kind } }","constructor":{"prototype":{"polluted":1}}}',
    },
    { contentType: json, body: '{"query":"{ backend { kind } }","unknown":1}' },
    { contentType: json, body: '{"query":"\\ud800"}' },
    { contentType: json, body: '{"query":"\\u0000"}' },
    { contentType: json, body: `{"query":"${huge}"}` },
    {
      contentType: json,
      body: `{"query":"{ backend { kind } }","variables":{"k":"${'y'.repeat(3_000_000)}"}}`,
    },
    {
      contentType: json,
      body: JSON.stringify({
        query:
          'mutation ($m: [NewMessageInput!]!) { appendMessages(input: { sessionKey: "k", messages: $m }) { __typename } }',
        variables: { m: Array.from({ length: 200_000 }, () => ({ role: 'user' })) },
      }),
    },
    {
      contentType: json,
      body: JSON.stringify({
        query: 'query ($f: SessionFilter) { sessions(filter: $f) { edges { cursor } } }',
        variables: { f: Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i])) },
      }),
    },
    { contentType: json, body: new Uint8Array([0xff, 0xfe, 0xfd]) },
    {
      contentType: json,
      body: new Uint8Array([
        0x7b, 0x22, 0x71, 0x75, 0x65, 0x72, 0x79, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d,
      ]),
    },
    {
      contentType: json,
      body: new Uint8Array([
        0xef,
        0xbb,
        0xbf,
        ...new TextEncoder().encode('{"query":"{ backend { kind } }"}'),
      ]),
    },
    { contentType: json, body: new Uint8Array([0xed, 0xa0, 0x80]) },
    { contentType: json, body: new Uint8Array([0x00, 0x00, 0x00, 0x7b]) },
    { contentType: 'application/json; charset=utf-16', body: '{"query":"{ backend { kind } }"}' },
    { contentType: 'application/json; charset=latin1', body: '{"query":"{ backend { kind } }"}' },
    { contentType: 'application/graphql+json', body: '{"query":"{ backend { kind } }"}' },
    { contentType: 'application/graphql', body: '{ backend { kind } }' },
    {
      contentType: 'application/x-www-form-urlencoded',
      body: 'query=%7B%20backend%20%7B%20kind%20%7D%20%7D',
    },
    {
      contentType: 'multipart/form-data; boundary=x',
      body: '--x\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{}\r\n--x--',
    },
    { contentType: 'multipart/form-data', body: 'garbage' },
    { contentType: 'text/plain', body: '{"query":"{ backend { kind } }"}' },
    { contentType: 'text/html', body: '<html></html>' },
    { contentType: 'application/xml', body: '<query/>' },
    { contentType: 'application/octet-stream', body: new Uint8Array([1, 2, 3]) },
    { contentType: '', body: '{"query":"{ backend { kind } }"}' },
    { contentType: null, body: '{"query":"{ backend { kind } }"}' },
    { contentType: 'application/json, text/plain', body: '{"query":"{ backend { kind } }"}' },
    { contentType: '*/*', body: '{"query":"{ backend { kind } }"}' },
    { contentType: json, body: '{"query":"{ backend { kind } }"}', method: 'PUT' },
    { contentType: json, body: '{"query":"{ backend { kind } }"}', method: 'PATCH' },
    { contentType: json, body: '{"query":"{ backend { kind } }"}', method: 'DELETE' },
  ];
}
