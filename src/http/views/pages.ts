// The login, consent, logout and error pages.
import { html, page } from './html.js';

const SCOPE_TEXT: Record<string, string> = {
  openid: 'Sign you in',
  profile: 'See your name',
  email: 'See your email address',
  offline_access: 'Stay signed in (keep access while you are away)',
};

export function loginPage(opts: { action: string; csrf: string; clientName: string; email?: string; error?: string }): string {
  return page(
    'Sign in',
    html`<h1>Sign in to continue to ${opts.clientName}</h1>
${opts.error ? html`<p class="error" role="alert">${opts.error}</p>` : ''}
<form method="post" action="${opts.action}">
<input type="hidden" name="csrf" value="${opts.csrf}">
<label for="username">Email</label>
<input id="username" name="username" type="email" autocomplete="username" required autofocus value="${opts.email ?? ''}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>`,
  );
}

export function consentPage(opts: { action: string; csrf: string; clientName: string; scopes: string[]; email: string }): string {
  return page(
    'Allow access',
    html`<h1>${opts.clientName} wants to access your account</h1>
<p class="muted">Signed in as ${opts.email}</p>
<p>It asks to:</p>
<ul>${opts.scopes.map((s) => html`<li>${SCOPE_TEXT[s] ?? s}</li>`)}</ul>
<form method="post" action="${opts.action}">
<input type="hidden" name="csrf" value="${opts.csrf}">
<div class="row">
<button type="submit" name="decision" value="deny" class="secondary">Deny</button>
<button type="submit" name="decision" value="approve">Allow</button>
</div>
</form>`,
  );
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
