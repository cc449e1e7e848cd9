/**
 * A search snippet with its matches highlighted, built from the plain `snippetText` and the
 * `snippetMatches` ranges (UTF-16 offsets) as text nodes and <mark> elements: the marked-up
 * `snippet` field is never parsed, so content can never become markup.
 */

import { h } from './dom.js';

export function renderSnippet(
  text: string,
  matches: ReadonlyArray<{ start: number; end: number }>,
): HTMLElement {
  const out = h('p', { class: 'snippet' });
  let at = 0;
  for (const { start, end } of [...matches].sort((a, b) => a.start - b.start)) {
    // ranges come sorted and disjoint; clamp anyway so a bad one cannot repeat or drop text
    const from = Math.max(at, Math.min(start, text.length));
    const to = Math.max(from, Math.min(end, text.length));
    if (to === from) continue;
    if (from > at) out.append(text.slice(at, from));
    out.append(h('mark', {}, text.slice(from, to)));
    at = to;
  }
  if (at < text.length) out.append(text.slice(at));
  return out;
}
