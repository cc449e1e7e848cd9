/**
 * Timestamps as people read them. The API's instants carry up to nine fraction digits, more than
 * Date parses everywhere: they are cut to milliseconds first.
 */

export function parseInstant(instant: string): Date | null {
  const date = new Date(instant.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(date.getTime()) ? null : date;
}

/** `14:03:27` today, `Mar 24, 14:03` otherwise; '' for null or an unreadable instant. */
export function formatInstant(instant: string | null): string {
  const date = instant === null ? null : parseInstant(instant);
  if (date === null) return '';
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString(undefined, { hour12: false })
    : date.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}
