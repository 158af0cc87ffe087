// The login, consent, logout and error pages.
import { html, page } from './html.js';

const SCOPE_TEXT: Record<string, string> = {
  openid: 'Sign you in',
  profile: 'See your name',
  email: 'See your email address',
  offline_access: 'Stay signed in (keep access while you are away)',
};

export function loginPage(opts: { action: string; csrf: string; interaction: string; clientName: string; email?: string; error?: string; lang?: string }): string {
  return page(
    'Sign in',
    html`<h1>Sign in to continue to ${opts.clientName}</h1>
${opts.error ? html`<p class="error" role="alert">${opts.error}</p>` : ''}
<form method="post" action="${opts.action}">
<input type="hidden" name="csrf" value="${opts.csrf}">
<input type="hidden" name="interaction" value="${opts.interaction}">
<label for="username">Email</label>
<input id="username" name="username" type="email" autocomplete="username" required autofocus value="${opts.email ?? ''}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>`,
    opts.lang,
  );
}

export function consentPage(opts: { action: string; csrf: string; interaction: string; clientName: string; scopes: string[]; audiences: string[]; email: string; lang?: string }): string {
  return page(
    'Allow access',
    html`<h1>${opts.clientName} wants to access your account</h1>
<p class="muted">Signed in as ${opts.email}</p>
<p>It asks to:</p>
<ul>${opts.scopes.map((s) => html`<li>${SCOPE_TEXT[s] ?? s}</li>`)}</ul>
${opts.audiences.length ? html`<p>at these services:</p>
<ul>${opts.audiences.map((a) => html`<li>${a}</li>`)}</ul>` : ''}
<form method="post" action="${opts.action}">
<input type="hidden" name="csrf" value="${opts.csrf}">
<input type="hidden" name="interaction" value="${opts.interaction}">
<div class="row">
<button type="submit" name="decision" value="deny" class="secondary">Deny</button>
<button type="submit" name="decision" value="approve">Allow</button>
</div>
</form>`,
    opts.lang,
  );
}

/**
 * OAuth 2.0 Form Post Response Mode §2: the authorization response as a form the browser posts to
 * the client's redirect URI at once (a nonce-bound script; a button when scripts are off).
 */
export function formPostPage(opts: { action: string; fields: Record<string, string | undefined>; nonce: string }): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Continue</title></head>
<body>
<form method="post" action="${opts.action}">
${Object.entries(opts.fields).map(([k, v]) => (v === undefined ? '' : html`<input type="hidden" name="${k}" value="${v}">`))}
<noscript><button type="submit">Continue</button></noscript>
</form>
<script nonce="${opts.nonce}">document.forms[0].submit()</script>
</body></html>`.value;
}

export function errorPage(error: string, description: string): string {
  return page(
    'Error',
    html`<h1>This request cannot be completed</h1>
<p class="error" role="alert">${description}</p>
<p class="muted">Error: ${error}. Go back to the application and try again.</p>`,
  );
}

/**
 * The page a login gets when the password-hashing queue is full: it reloads itself (a meta refresh,
 * which needs no script under our CSP) to the sign-in form after `retryAfter` seconds.
 */
export function busyPage(opts: { retryAfter: number; next: string }): string {
  return page(
    'Signing in',
    html`<h1>Many people are signing in right now</h1>
<p>This page will take you back to the sign-in form in ${String(opts.retryAfter)} seconds.</p>
<p class="muted"><a href="${opts.next}">Go back now</a></p>`,
    'en',
    html`<meta http-equiv="refresh" content="${String(opts.retryAfter)};url=${opts.next}">`,
  );
}

export function logoutConfirmPage(opts: { action: string; csrf: string; hidden: Record<string, string | undefined> }): string {
  return page(
    'Sign out',
    html`<h1>Sign out?</h1>
<p>Do you want to sign out of your account?</p>
<form method="post" action="${opts.action}">
<input type="hidden" name="csrf" value="${opts.csrf}">
${Object.entries(opts.hidden).map(([k, v]) => (v === undefined ? '' : html`<input type="hidden" name="${k}" value="${v}">`))}
<div class="row">
<button type="submit" name="logout" value="no" class="secondary">Stay signed in</button>
<button type="submit" name="logout" value="yes">Sign out</button>
</div>
</form>`,
  );
}

export function loggedOutPage(): string {
  return page('Signed out', html`<h1>You are signed out</h1><p>You can close this window.</p>`);
}

/**
 * The page for a database outage (503): nothing was lost, the sign-in in progress is kept, and the
 * same page or form works again in a moment. `retryUrl` is this request again, for a GET.
 */
export function unavailablePage(opts: { retryUrl?: string }): string {
  return page(
    'Try again in a moment',
    html`<h1>We could not finish this step just now</h1>
<p>The service is briefly unavailable; where you were is kept. Try again in a moment.</p>
${opts.retryUrl ? html`<p><a href="${opts.retryUrl}">Try again</a></p>` : html`<p class="muted">Go back and submit the form again in a moment.</p>`}`,
  );
}
