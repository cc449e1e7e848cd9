/**
 * Turns a backend snippet (plain text with SNIPPET_OPEN/SNIPPET_CLOSE around each match) into the
 * forms the API offers: HTML-safe text with `<mark>` elements, plain text, and match ranges.
 */

import { SNIPPET_CLOSE, SNIPPET_OPEN } from '../backends/backend.js';

export interface TextRange {
  /** UTF-16 code unit offset of the first matched character. */
  start: number;
  /** UTF-16 code unit offset just past the match. */
  end: number;
}

export interface Snippet {
  /** Escaped text with every match wrapped in `<mark>`…`</mark>`: safe to put into HTML. */
  html: string;
  /** The excerpt as plain text, markers removed. */
  text: string;
  /** Where the matches sit in `text`. */
  matches: TextRange[];
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/**
 * Markers are read as a balanced pair: a stray close (or an open inside a match) is dropped
 * rather than producing unbalanced tags, and a match left open at the end is closed.
 */
export function renderSnippet(raw: string): Snippet {
  let html = '';
  let text = '';
  const matches: TextRange[] = [];
  let open = -1;
  let run = '';
  const flush = () => {
    html += escapeHtml(run);
    text += run;
    run = '';
  };
  for (const ch of raw) {
    if (ch === SNIPPET_OPEN) {
      if (open !== -1) continue;
      flush();
      open = text.length;
      html += '<mark>';
    } else if (ch === SNIPPET_CLOSE) {
      if (open === -1) continue;
      flush();
      matches.push({ start: open, end: text.length });
      open = -1;
      html += '</mark>';
    } else {
      run += ch;
    }
  }
  flush();
  if (open !== -1) {
    matches.push({ start: open, end: text.length });
    html += '</mark>';
  }
  return { html, text, matches };
}
