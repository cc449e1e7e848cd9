/**
 * zeroclaw's side of the JSONL format, written from the reference notes without any of our code,
 * so that tests compare two independent implementations:
 *
 * - `serdeLine`: what `serde_json::to_string(&ChatMessage)` + `\n` produces (serde_json's escape
 *   table: `"` `\\` \b \t \n \f \r, other C0 controls as lower-case `\u00xx`, nothing else escaped);
 * - `zeroclawLoad`: `SessionStore::load`: split on `\n`, drop one trailing `\r`, skip lines that are
 *   not UTF-8, Rust `trim()` (Unicode White_Space, not U+FEFF), skip empty lines, then serde's
 *   `ChatMessage` rules (an object; `role` and `content` strings, each at most once; unknown fields
 *   ignored; no trailing garbage; no raw control characters; no lone surrogate in role/content; or
 *   the sequence form serde derives for every struct: exactly `[role, content]`, two strings).
 */

export interface ChatMessage {
  role: string;
  content: string;
}

const SHORT_ESCAPES: Record<number, string> = {
  34: '\\"',
  92: '\\\\',
  8: '\\b',
  9: '\\t',
  10: '\\n',
  12: '\\f',
  13: '\\r',
};

export function serdeString(value: string): string {
  let out = '"';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const short = SHORT_ESCAPES[c];
    if (short) out += short;
    else if (c < 0x20) out += `\\u00${c.toString(16).padStart(2, '0')}`;
    else out += value[i];
  }
  return `${out}"`;
}

export function serdeLine(message: ChatMessage): string {
  return `{"role":${serdeString(message.role)},"content":${serdeString(message.content)}}\n`;
}

/** The Rust char::is_whitespace set. */
const WHITE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005,
  0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

function rustTrim(text: string): string {
  let a = 0;
  let b = text.length;
  while (a < b && WHITE.has(text.charCodeAt(a))) a++;
  while (b > a && WHITE.has(text.charCodeAt(b - 1))) b--;
  return text.slice(a, b);
}

export function zeroclawLoad(bytes: Uint8Array): ChatMessage[] {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const out: ChatMessage[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    const next = end === -1 ? bytes.length : end + 1;
    if (end === -1) end = bytes.length;
    let line = bytes.subarray(start, end);
    start = next;
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, -1);
    let text: string;
    try {
      text = decoder.decode(line);
    } catch {
      continue;
    }
    text = rustTrim(text);
    if (text === '') continue;
    const message = serdeChatMessage(text);
    if (message) out.push(message);
  }
  return out;
}

/** A strict JSON reader shaped like serde_json deserialising `ChatMessage`; null on any failure. */
function serdeChatMessage(text: string): ChatMessage | null {
  let i = 0;
  const fail = (): never => {
    throw new SyntaxError(`at ${i}`);
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const expect = (ch: string) => {
    if (text[i] !== ch) fail();
    i++;
  };
  const string = (): string => {
    expect('"');
    let out = '';
    for (;;) {
      if (i >= text.length) fail();
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return out;
      }
      if (c < 0x20) fail();
      if (c !== 0x5c) {
        out += text[i++];
        continue;
      }
      const e = text[i + 1];
      i += 2;
      const simple: Record<string, string> = {
        '"': '"',
        '\\': '\\',
        '/': '/',
        b: '\b',
        f: '\f',
        n: '\n',
        r: '\r',
        t: '\t',
      };
      if (e !== undefined && e in simple) out += simple[e];
      else if (e === 'u') {
        const hex = text.slice(i, i + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail();
        out += String.fromCharCode(Number.parseInt(hex, 16));
        i += 4;
      } else fail();
    }
  };
  const value = (): unknown => {
    ws();
    const c = text[i];
    if (c === '"') return string();
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return {};
      }
      for (;;) {
        ws();
        string();
        ws();
        expect(':');
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        expect('}');
        return {};
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return [];
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        expect(']');
        return [];
      }
    }
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return null;
      }
    }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m) fail();
    i += m![0].length;
    return 0;
  };
  const field = (): string => {
    ws();
    if (text[i] !== '"') fail(); // serde: invalid type, expected a string
    const v = string();
    if (/\p{Surrogate}/u.test(v)) fail(); // serde: lone surrogate
    return v;
  };
  try {
    ws();
    if (text[i] === '[') {
      // serde's derived Deserialize also takes a struct as a sequence of its fields, in order;
      // serde_json then wants exactly that many elements.
      i++;
      const role = field();
      ws();
      expect(',');
      const content = field();
      ws();
      expect(']');
      ws();
      if (i !== text.length) fail(); // serde: trailing characters
      return { role, content };
    }
    expect('{');
    let role: string | undefined;
    let content: string | undefined;
    ws();
    if (text[i] !== '}') {
      for (;;) {
        ws();
        const key = string();
        ws();
        expect(':');
        ws();
        if (key === 'role' || key === 'content') {
          if ((key === 'role' ? role : content) !== undefined) fail(); // serde: duplicate field
          if (text[i] !== '"') fail(); // serde: invalid type, expected a string
          const v = string();
          if (/\p{Surrogate}/u.test(v)) fail(); // serde: lone surrogate
          if (key === 'role') role = v;
          else content = v;
        } else {
          value();
        }
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        break;
      }
    }
    expect('}');
    ws();
    if (i !== text.length) fail(); // serde: trailing characters
    if (role === undefined || content === undefined) return null; // serde: missing field
    return { role, content };
  } catch {
    return null;
  }
}
