/**
 * A message's content as a readable block. Tool turns and tool calls are JSON text (zeroclaw
 * stores them as such): content that parses as a JSON object or array is pretty-printed, with
 * string values that are JSON themselves (tool-call arguments) expanded in place. Everything is
 * text nodes: a message can hold any markup and it shows as the characters it is.
 */

import { h } from './dom.js';

/** Roles with a colour of their own; any other role text is shown in a neutral colour. */
const KNOWN_ROLES = new Set(['user', 'assistant', 'system', 'tool']);

/** The `data-role` value (a CSS hook) for a role. */
export function roleClass(role: string): string {
  return KNOWN_ROLES.has(role) ? role : 'other';
}

export function renderContent(role: string, content: string): HTMLElement {
  const json = parseStructured(content);
  if (json !== undefined) return h('pre', { class: 'content json' }, renderJson(json, 0));
  return h('div', { class: role === 'tool' ? 'content text mono' : 'content text' }, content);
}

/** The value when `text` is a JSON object or array; undefined otherwise. */
function parseStructured(text: string): unknown {
  const trimmed = text.trim();
  if (!(trimmed.startsWith('{') || trimmed.startsWith('['))) return undefined;
  try {
    return JSON.parse(trimmed) as unknown;
  } catch {
    return undefined;
  }
}

const INDENT = '  ';

function renderJson(value: unknown, depth: number): DocumentFragment {
  const out = document.createDocumentFragment();
  const pad = INDENT.repeat(depth + 1);
  const closePad = INDENT.repeat(depth);
  if (Array.isArray(value)) {
    if (value.length === 0) return token(out, 'punct', '[]');
    out.append('[\n');
    value.forEach((item, i) => {
      out.append(pad, renderJson(item, depth + 1), i < value.length - 1 ? ',\n' : '\n');
    });
    out.append(closePad, ']');
    return out;
  }
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value);
    if (entries.length === 0) return token(out, 'punct', '{}');
    out.append('{\n');
    entries.forEach(([key, item], i) => {
      out.append(pad, h('span', { class: 'json-key' }, JSON.stringify(key)), ': ');
      out.append(renderJson(item, depth + 1), i < entries.length - 1 ? ',\n' : '\n');
    });
    out.append(closePad, '}');
    return out;
  }
  if (typeof value === 'string') {
    const nested = parseStructured(value);
    if (nested !== undefined && typeof nested === 'object' && nested !== null) {
      // a JSON document inside a string (tool-call arguments): shown expanded, marked as text
      out.append(
        h('span', { class: 'json-embedded', title: 'JSON text in a string' }, renderJson(nested, depth)),
      );
      return out;
    }
    return token(out, 'json-string', JSON.stringify(value));
  }
  if (typeof value === 'number') return token(out, 'json-number', String(value));
  return token(out, 'json-literal', String(value));
}

function token(out: DocumentFragment, kind: string, text: string): DocumentFragment {
  out.append(h('span', { class: kind }, text));
  return out;
}
