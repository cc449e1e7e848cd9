/**
 * One JSONL line, exactly as zeroclaw writes and reads it.
 *
 * Write: `serde_json::to_string(&ChatMessage{role, content}) + "\n"`, which for well-formed
 * strings is byte-identical to `JSON.stringify({ role, content }) + '\n'`.
 *
 * Read (`SessionStore::load`): split on `\n`, drop one trailing `\r`, skip lines that are not
 * UTF-8, `trim()` (Unicode White_Space; a BOM is NOT white space), skip empty lines, then serde:
 * an object whose `role` and `content` are strings, unknown fields ignored, a duplicate
 * `role`/`content` key, a lone-surrogate escape or trailing garbage fails; or the sequence form
 * serde derives for every struct, exactly `[role, content]` (two strings). A failed line is
 * skipped by zeroclaw; we skip it too but count it.
 */

import type { NewMessage } from '../backend.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const LONE_SURROGATE = /\p{Surrogate}/u;
// Rust's char::is_whitespace (Unicode White_Space), which excludes U+FEFF unlike JS trim().
const RUST_TRIM =
  /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/gu;

export type DecodedLine = { kind: 'message'; message: NewMessage } | { kind: 'blank' } | { kind: 'corrupt' };

/** The bytes zeroclaw writes for one message, newline included. */
export function encodeLine(message: NewMessage): string {
  return `${JSON.stringify({ role: message.role, content: message.content })}\n`;
}

/** Decodes one line (without its `\n`) by zeroclaw's rules. */
export function decodeLine(bytes: Uint8Array): DecodedLine {
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0x0d) end--;
  let text: string;
  try {
    text = utf8.decode(bytes.subarray(0, end));
  } catch {
    return { kind: 'corrupt' };
  }
  // the common case, a line exactly as serde wrote it, needs no trimming
  if (!(text.charCodeAt(0) === 0x7b && text.charCodeAt(text.length - 1) === 0x7d)) {
    text = text.replace(RUST_TRIM, '');
  }
  if (text.length === 0) return { kind: 'blank' };
  const message = parseChatMessage(text);
  return message ? { kind: 'message', message } : { kind: 'corrupt' };
}

/** serde's `ChatMessage` deserialisation, or null where serde would fail. */
export function parseChatMessage(text: string): NewMessage | null {
  const first = text.charCodeAt(0);
  if (first !== 0x7b /* { */ && first !== 0x5b /* [ */) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (Array.isArray(value)) return parseSequenceForm(value);
  if (typeof value !== 'object' || value === null) return null;
  const { role, content } = value as Record<string, unknown>;
  if (typeof role !== 'string' || typeof content !== 'string') return null;
  if (LONE_SURROGATE.test(role) || LONE_SURROGATE.test(content)) return null;
  if (hasDuplicateField(text)) return null;
  return { role, content };
}

/**
 * serde's derived `Deserialize` also reads a struct from a sequence of its fields in declaration
 * order, and serde_json wants exactly as many elements: `["user","hi"]` is a ChatMessage.
 */
function parseSequenceForm(value: unknown[]): NewMessage | null {
  if (value.length !== 2) return null;
  const [role, content] = value;
  if (typeof role !== 'string' || typeof content !== 'string') return null;
  if (LONE_SURROGATE.test(role) || LONE_SURROGATE.test(content)) return null;
  return { role, content };
}

/** True when the top-level object names `role` or `content` twice (JSON.parse keeps the last). */
function hasDuplicateField(text: string): boolean {
  // Without a \u escape a key can only be spelled literally, so one literal occurrence each is proof.
  if (!text.includes('\\u') && countOf(text, '"role"') <= 1 && countOf(text, '"content"') <= 1) return false;
  let depth = 0;
  let roles = 0;
  let contents = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i + 1;
      i++;
      while (i < text.length && text.charCodeAt(i) !== 0x22) {
        if (text.charCodeAt(i) === 0x5c /* \ */) i++;
        i++;
      }
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(start - 1, i + 1)) as string;
        if (key === 'role') roles++;
        else if (key === 'content') contents++;
        expectKey = false;
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++;
      expectKey = depth === 1;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    } else if (c === 0x2c /* , */ && depth === 1) {
      expectKey = true;
    }
  }
  return roles > 1 || contents > 1;
}

function countOf(text: string, needle: string): number {
  let count = 0;
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) count++;
  return count;
}
