/**
 * The dashboard's HTML shell and the headers it is served with. The page holds no inline script
 * or style, so its Content-Security-Policy can be strict: scripts and styles from this server
 * only, network access to this origin only (GraphQL over HTTP and WebSocket), no frames, no
 * plugins, and Trusted Types, under which assigning a string to `innerHTML` throws: nothing a
 * message holds can become markup, even by a bug in the page code.
 */

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  // 'self' covers ws: and wss: to this host and port (CSP level 3)
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

/** Headers for every dashboard response. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
});

/**
 * The page. Asset URLs carry their content version, so the assets can be cached for good.
 * @param versions hex digests of the script and the stylesheet
 */
export function dashboardPage(versions: { script: string; style: string }): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sessiongraph</title>
<link rel="stylesheet" href="app.css?v=${versions.style}">
<script src="app.js?v=${versions.script}" defer></script>
</head>
<body>
<header class="top">
  <h1><a href="#/">sessiongraph</a></h1>
  <form id="search-form" role="search">
    <input id="search-input" type="search" name="q" placeholder="Search messages: words, &quot;a phrase&quot;, prefix*, -not" autocomplete="off" aria-label="Search messages">
  </form>
  <span id="connection" data-status="connecting" role="status">connecting…</span>
</header>
<nav class="side" aria-label="Sessions">
  <p id="session-list-status">Loading sessions…</p>
  <ul id="session-list"></ul>
  <button id="session-list-more" type="button" hidden>More sessions</button>
</nav>
<main class="main">
  <p id="home">Pick a session to follow it live, or search all messages.</p>
  <section id="session-view" hidden aria-live="polite">
    <header id="session-header"></header>
    <button id="messages-earlier" type="button" hidden>Earlier messages</button>
    <ol id="messages"></ol>
  </section>
  <section id="search-view" hidden>
    <p id="search-summary"></p>
    <ul id="search-results"></ul>
  </section>
</main>
<dialog id="token-dialog" aria-labelledby="token-title">
  <form id="token-form">
    <h2 id="token-title" class="dialog-title">Access token</h2>
    <p id="token-reason"></p>
    <input id="token-input" type="password" autocomplete="off" spellcheck="false" aria-label="Access token" required>
    <button type="submit">Connect</button>
  </form>
</dialog>
</body>
</html>
`;
}
