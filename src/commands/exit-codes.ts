/**
 * Exit codes of the `sessiongraph` command: the one place they are defined. Every command's
 * `--help` prints this table (exitCodesHelp) and README.md's "Exit codes" repeats it.
 */

/** The work was done (`serve`: stopped cleanly by SIGINT or SIGTERM; `tail`: ended by a signal). */
export const EXIT_OK = 0;
/**
 * The work was not (all) done: a failed session or file, a truncated export, a server that
 * failed to start or to shut down, an unexpected error.
 */
export const EXIT_FAILURE = 1;
/** Usage errors (bad flags, arguments or variables); commander's own default is 1. */
export const EXIT_USAGE = 2;

export const EXIT_CODES: ReadonlyArray<{ code: number; meaning: string }> = [
  { code: EXIT_OK, meaning: 'done; serve and tail: stopped by SIGINT or SIGTERM after a clean shutdown' },
  {
    code: EXIT_FAILURE,
    meaning:
      'not (all) done: a session or file failed, an export was cut short, the server could not start, a second signal',
  },
  {
    code: EXIT_USAGE,
    meaning: 'bad usage: an unknown flag, a missing argument, an invalid value or variable',
  },
];

/** The exit-code table as `--help` prints it. */
export function exitCodesHelp(): string {
  return `Exit codes:\n${EXIT_CODES.map(({ code, meaning }) => `  ${code}  ${meaning}`).join('\n')}`;
}
