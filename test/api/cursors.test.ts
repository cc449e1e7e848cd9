import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import {
  decodeMessageCursor,
  encodeMessageCursor,
  encodePosition,
  messageDigest,
  START_POSITION,
} from '../../src/events/message-cursor.js';
import { decodeSessionCursor, encodeSessionCursor } from '../../src/schema/cursors.js';
import { renderSnippet } from '../../src/schema/snippet.js';

describe('cursors', () => {
  it('round-trip, and a message cursor changes when its message does', () => {
    const m = { seq: 42, role: 'user', content: 'hello' };
    const cursor = encodeMessageCursor(m);
    expect(decodeMessageCursor(cursor, 'after')).toEqual({ seq: 42, digest: messageDigest(m) });
    expect(encodeMessageCursor({ ...m, content: 'hello!' })).not.toBe(cursor);
    expect(encodeMessageCursor({ ...m, role: 'assistant' })).not.toBe(cursor);
    const s = { key: 'telegram_1:ü', lastActivityAt: '2026-03-24T21:51:41.123456789+00:00' };
    expect(decodeSessionCursor(encodeSessionCursor(s), 'after')).toEqual(s);
    expect(decodeSessionCursor(encodeSessionCursor({ key: 'k', lastActivityAt: null }), 'x')).toEqual({
      key: 'k',
      lastActivityAt: null,
    });
  });

  it('encode the start of a session and a position whose message is not known', () => {
    expect(decodeMessageCursor(encodePosition(START_POSITION), 'after')).toEqual({ seq: 0, digest: null });
    expect(decodeMessageCursor(encodePosition({ seq: 7, digest: null }), 'after')).toEqual({
      seq: 7,
      digest: null,
    });
  });

  it('refuse anything malformed with InvalidInputError naming the argument', () => {
    const session = encodeSessionCursor({ key: 'k', lastActivityAt: null });
    const bad = [
      '',
      '!!!',
      'bTE6',
      `${encodeMessageCursor({ seq: 1, role: 'r', content: 'c' })}x`,
      session,
      'a'.repeat(9_000),
    ];
    for (const cursor of bad) {
      expect(() => decodeMessageCursor(cursor, 'before'), cursor).toThrow(InvalidInputError);
    }
    const message = encodeMessageCursor({ seq: 1, role: 'r', content: 'c' });
    for (const cursor of [
      '',
      message,
      Buffer.from('s1:{"a":1}').toString('base64url'),
      Buffer.from('s1:[1,"k"]').toString('base64url'),
    ]) {
      expect(() => decodeSessionCursor(cursor, 'after'), cursor).toThrow(InvalidInputError);
    }
    try {
      decodeMessageCursor('nope', 'before');
    } catch (err) {
      expect((err as InvalidInputError).field).toBe('before');
    }
  });
});

describe('snippets', () => {
  it('escape the text, mark the matches and report their ranges', () => {
    const s = renderSnippet('a <b> & \u0002deploy\u0003 "x" \u0002déjà\u0003');
    expect(s.html).toBe('a &lt;b&gt; &amp; <mark>deploy</mark> &quot;x&quot; <mark>déjà</mark>');
    expect(s.text).toBe('a <b> & deploy "x" déjà');
    expect(s.matches.map(({ start, end }) => s.text.slice(start, end))).toEqual(['deploy', 'déjà']);
  });

  it('never emit unbalanced marks from stray markers', () => {
    expect(renderSnippet('x\u0003y\u0002z\u0002w').html).toBe('xy<mark>zw</mark>');
    expect(renderSnippet('😀\u0002é\u0003').matches).toEqual([{ start: 2, end: 3 }]);
  });
});
