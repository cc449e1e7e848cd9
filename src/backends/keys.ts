/**
 * zeroclaw's session-key rules.
 *
 * File names: every Unicode scalar that is not alphanumeric (Rust's `char::is_alphanumeric`, the
 * Unicode Alphabetic or Numeric property), `_` or `-` becomes one `_`. The mapping is lossy:
 * `slack/thread:1` and `slack_thread_1` share a file, so the JSONL backend keeps the raw key
 * in a sidecar index and refuses a second key for the same file (KeyCollisionError).
 */

const KEEP = /[\p{Alphabetic}\p{N}_-]/u;

/** zeroclaw's `sanitize_session_key`: the JSONL file stem for a raw key. */
export function sanitizeKey(key: string): string {
  let out = '';
  for (const ch of key) out += KEEP.test(ch) ? ch : '_';
  return out;
}

/** The key's channel: its text before the first `_` (telegram, discord, slack, gw, rpc ...). */
export function channelOf(key: string): string | null {
  const at = key.indexOf('_');
  return at > 0 ? key.slice(0, at) : null;
}
