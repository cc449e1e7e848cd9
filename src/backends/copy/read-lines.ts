/**
 * Lines of a byte stream, split at `\n` only. node:readline also ends lines at a lone `\r`, and
 * JSON text may hold U+2028/U+2029 raw; an export line is cut nowhere but at its newline.
 */

import { StringDecoder } from 'node:string_decoder';

export interface LineStats {
  /** Bytes read so far (for a progress bar over a file of known size). */
  bytes: number;
}

export async function* readLines(
  stream: AsyncIterable<Buffer | string>,
  stats: LineStats = { bytes: 0 },
): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of stream) {
    stats.bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    const text = rest + (typeof chunk === 'string' ? chunk : decoder.write(chunk));
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      yield text.slice(start, end);
      start = end + 1;
    }
    rest = text.slice(start);
  }
  rest += decoder.end();
  if (rest.length > 0) yield rest;
}
