/**
 * The access token: kept in sessionStorage (gone with the tab, never in a URL or a cookie) and
 * asked for when the server refuses a request (HTTP 401 / UNAUTHENTICATED, WebSocket close 4403).
 * Every caller that was refused waits on the same prompt and retries once a token is entered.
 */

import { byId } from './dom.js';

const STORAGE_KEY = 'sessiongraph.token';

export interface TokenGate {
  /** The token to send; null when none was entered. */
  current(): string | null;
  /**
   * Shows the prompt (one for all callers) and resolves once a token was entered.
   * @param refused the token the refused request carried: when it is no longer the current one,
   * a newer token was entered meanwhile and this resolves at once, to retry with that one
   */
  ask(refused: string | null): Promise<void>;
}

export function createTokenGate(): TokenGate {
  const dialog = byId<HTMLDialogElement>('token-dialog');
  const form = byId<HTMLFormElement>('token-form');
  const input = byId<HTMLInputElement>('token-input');
  const reason = byId('token-reason');
  let token = readStored();
  let waiting: { promise: Promise<void>; resolve: () => void } | null = null;

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const entered = input.value.trim();
    if (entered === '' || waiting === null) return;
    token = entered;
    store(entered);
    input.value = '';
    dialog.close();
    const { resolve } = waiting;
    waiting = null;
    resolve();
  });
  // Escape would close the dialog and leave the page without data and without a way back
  dialog.addEventListener('cancel', (event) => event.preventDefault());

  return {
    current: () => token,
    ask(refused) {
      if (refused !== token) return Promise.resolve();
      if (waiting) return waiting.promise;
      reason.textContent =
        token === null ? 'This server requires an access token.' : 'The server refused this token.';
      token = null;
      store(null);
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      waiting = { promise, resolve };
      dialog.showModal();
      input.focus();
      return promise;
    },
  };
}

function readStored(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

function store(token: string | null): void {
  try {
    if (token === null) sessionStorage.removeItem(STORAGE_KEY);
    else sessionStorage.setItem(STORAGE_KEY, token);
  } catch {
    // storage disabled: the token lives as long as the page
  }
}
