/**
 * Turning the dashboard off: `--no-ui`, `--ui off` and SESSIONGRAPH_UI, through the same commander
 * options and parser as `sessiongraph serve`. (What a server with the dashboard off answers is in
 * dashboard.test.ts.)
 */

import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config.js';
import { parseServeArgs } from '../helpers/serve-config.js';

const parse = parseServeArgs;

describe('the dashboard setting', () => {
  it('is on by default, and off with --no-ui, --ui off or SESSIONGRAPH_UI=false', () => {
    expect(parse([]).ui).toBe(true);
    expect(parse(['--no-ui']).ui).toBe(false);
    expect(parse(['--ui', 'off']).ui).toBe(false);
    expect(parse([], { SESSIONGRAPH_UI: 'false' }).ui).toBe(false);
    expect(parse([], { SESSIONGRAPH_UI: 'on' }).ui).toBe(true);
  });

  it('lets a flag win over the variable', () => {
    expect(parse(['--no-ui'], { SESSIONGRAPH_UI: 'on' }).ui).toBe(false);
    expect(parse(['--ui', 'on'], { SESSIONGRAPH_UI: 'off' }).ui).toBe(true);
  });

  it('names the variable and the value it refuses', () => {
    expect(() => parse([], { SESSIONGRAPH_UI: 'maybe' })).toThrow(ConfigError);
    expect(() => parse([], { SESSIONGRAPH_UI: 'maybe' })).toThrow(
      /SESSIONGRAPH_UI: must be on or off \(got "maybe"\)/,
    );
    expect(() => parse(['--ui', 'sometimes'])).toThrow(/--ui: must be on or off/);
  });
});
