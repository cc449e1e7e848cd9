/**
 * How `sessiongraph tail` prints: one JSON object per line (`--json`, for scripts), or lines for
 * people, the role coloured on a terminal.
 */

export interface TailFormat {
  json: boolean;
  color: boolean;
}

const RESET = '\u001b[0m';
const DIM = '\u001b[2m';
const ROLE_COLORS: Record<string, string> = {
  user: '\u001b[32m',
  assistant: '\u001b[36m',
  system: '\u001b[33m',
  tool: '\u001b[35m',
};

type Json = Record<string, unknown>;

const paint = (format: TailFormat, code: string | undefined, text: string) =>
  format.color && code ? `${code}${text}${RESET}` : text;

/** One event of `sessionEvents` (as selected by the tail query), as output text. */
export function formatSessionEvent(event: Json, format: TailFormat): string {
  const type = String(event.__typename);
  const message = event.message as Json | undefined;
  const session = event.session as Json | null | undefined;
  if (format.json) {
    const line: Json = { event: type, sessionKey: event.sessionKey };
    if (message) Object.assign(line, message);
    if (type === 'MessageRemoved') line.seq = event.seq;
    if (type === 'SessionRenamed') line.name = event.name;
    if (type === 'SessionCompacted') line.droppedCount = event.droppedCount;
    if (type === 'SessionReset') line.messageCount = session?.messageCount ?? 0;
    line.cursor = event.cursor;
    return `${JSON.stringify(line)}\n`;
  }
  const note = (text: string) => `${paint(format, DIM, `-- ${text}`)}\n`;
  switch (type) {
    case 'MessageAppended': {
      const role = String(message?.role);
      const content = String(message?.content).replaceAll('\n', '\n  ');
      return `${paint(format, DIM, `[${message?.seq}]`)} ${paint(format, ROLE_COLORS[role], `${role}:`)} ${content}\n`;
    }
    case 'MessageRemoved':
      return note(`message ${event.seq} removed`);
    case 'SessionRenamed':
      return note(event.name ? `session renamed to ${JSON.stringify(event.name)}` : 'session name cleared');
    case 'SessionCompacted':
      return note(`session compacted (${event.droppedCount} unreadable entries dropped)`);
    case 'SessionDeleted':
      return note('session deleted');
    case 'SessionReset':
      return note(
        `the session was rewritten (${session?.messageCount ?? 0} messages now); following from its current end`,
      );
    default:
      return note(type);
  }
}

/** One event of `sessionActivity`, as output text. */
export function formatActivityEvent(event: Json, format: TailFormat): string {
  const session = event.session as Json | null;
  if (format.json) {
    return `${JSON.stringify({
      event: event.kind,
      sessionKey: event.sessionKey,
      name: session?.name ?? null,
      messageCount: session?.messageCount ?? null,
      lastActivityAt: session?.lastActivityAt ?? null,
    })}\n`;
  }
  const kind = paint(format, DIM, String(event.kind).padEnd(7));
  if (!session) return `${kind} ${event.sessionKey}\n`;
  const name = session.name ? ` ${JSON.stringify(session.name)}` : '';
  const count = `${session.messageCount} message${session.messageCount === 1 ? '' : 's'}`;
  const at = session.lastActivityAt ? `, last ${session.lastActivityAt}` : '';
  return `${kind} ${event.sessionKey}${name} (${count}${at})\n`;
}
