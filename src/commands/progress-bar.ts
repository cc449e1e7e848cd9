/**
 * A one-line progress bar for `export` and `import`, redrawn in place on a terminal at most every
 * `intervalMs`. Not a terminal (a pipe, a file, CI): it draws nothing, so logs stay clean.
 */

import type { CopyProgress } from '../backends/copy/export-sessions.js';

export interface ProgressBar {
  update(progress: CopyProgress): void;
  /** Draws the last state and ends the line. */
  done(): void;
}

export interface ProgressBarOptions {
  /** @default 100 // milliseconds between redraws */
  intervalMs?: number;
}

const count = (n: number) => n.toLocaleString('en-US');

export function createProgressBar(
  stream: Pick<NodeJS.WriteStream, 'isTTY' | 'columns' | 'write'>,
  label: string,
  options: ProgressBarOptions = {},
): ProgressBar {
  if (!stream.isTTY) return { update() {}, done() {} };
  const intervalMs = options.intervalMs ?? 100;
  let latest: CopyProgress | null = null;
  let drawnAt = 0;

  const draw = () => {
    if (!latest) return;
    const { sessions, messages, totalSessions, totalMessages } = latest;
    const of = (total: number | null) => (total === null ? '' : `/${count(total)}`);
    const text = `${count(messages)}${of(totalMessages)} messages, ${count(sessions)}${of(totalSessions)} sessions`;
    let fraction: number | null = null;
    if (totalMessages) fraction = messages / totalMessages;
    else if (totalSessions) fraction = sessions / totalSessions;
    let bar = '';
    if (fraction !== null) {
      const clamped = Math.min(1, Math.max(0, fraction));
      const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - text.length - label.length - 12));
      const filled = Math.round(clamped * width);
      bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.floor(clamped * 100)).padStart(3)}% `;
    }
    // \x1b[K clears what a longer previous line left to the right.
    stream.write(`\r${label} ${bar}${text}\x1b[K`);
  };

  return {
    update(progress) {
      latest = progress;
      const now = Date.now();
      if (now - drawnAt < intervalMs) return;
      drawnAt = now;
      draw();
    },
    done() {
      if (!latest) return;
      draw();
      stream.write('\n');
      latest = null;
    },
  };
}
