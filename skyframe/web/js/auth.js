// Accounts in the browser: the /login and /setup pages, and the signed-in user + "Log out" in the app.
// Self-contained (no imports), so the sign-in pages load nothing else. The session itself is an HttpOnly
// cookie that scripts never see; every request here is same-origin.

const JSON_HEADERS = { Accept: 'application/json', 'Content-Type': 'application/json' };

let redirecting = false;

/** Where to send a signed-out visitor, remembering the page (and selection) to come back to. */
export function loginUrl(next = `${location.pathname}${location.search}${location.hash}`) {
  return next && next !== '/' ? `/login?next=${encodeURIComponent(next)}` : '/login';
}

/** Leave for the login page (once, however many requests answered 401 at the same time). */
export function redirectToLogin() {
  if (redirecting) return;
  redirecting = true;
  location.assign(loginUrl());
}

/** Only same-site paths: `next` must not become an open redirect to another site. */
function safeNext(value) {
  if (!value || !value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) return '/';
  return value;
}

async function postJson(path, body) {
  let response;
  try {
    response = await fetch(path, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(body), credentials: 'same-origin' });
  } catch {
    return { ok: false, status: 0, error: { message: 'The server could not be reached. Check your connection.' } };
  }
  const data = await response.json().catch(() => null);
  return { ok: response.ok, status: response.status, data, error: data?.error ?? null, response };
}

// ---- The app page: who is signed in, and "Log out" -------------------------------------------------------

/**
 * Ask the server who we are. With accounts on, show the username and a "Log out" button in the top bar;
 * on 401, go to the login page. Returns the user, `false` when redirecting, or null if unknown.
 */
export async function initAuth(topbar = document.querySelector('.topbar')) {
  let me;
  try {
    const response = await fetch('/api/auth/me', { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    if (response.status === 401) {
      redirectToLogin();
      return false;
    }
    if (!response.ok) return null;
    me = await response.json();
  } catch {
    return null;
  }
  if (!me?.authEnabled || !topbar || topbar.querySelector('.user-menu')) return me;
  if (!document.querySelector('link[href="/css/auth.css"]')) {
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = '/css/auth.css';
    document.head.append(link);
  }
  const menu = document.createElement('div');
  menu.className = 'user-menu';
  menu.dataset.testid = 'user-menu';
  const name = document.createElement('span');
  name.className = 'user-name';
  name.dataset.testid = 'user-name';
  name.textContent = me.username;
  name.title = `Signed in as ${me.username}`;
  menu.append(name);
  if (me.isAdmin) {
    const role = document.createElement('span');
    role.className = 'user-role';
    role.textContent = 'admin';
    menu.append(role);
  }
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'btn btn-ghost btn-small';
  button.dataset.testid = 'logout-button';
  button.textContent = 'Log out';
  button.setAttribute('aria-label', `Log out ${me.username}`);
  button.addEventListener('click', logout);
  menu.append(button);
  // Before the page's own actions (e.g. "Upload videos"), pushed right by the menu's auto margin.
  const anchor = topbar.querySelector('.brand')?.nextElementSibling ?? null;
  topbar.insertBefore(menu, anchor);
  return me;
}

export async function logout() {
  await postJson('/api/auth/logout', {});
  redirecting = true;
  location.assign('/login');
}

// ---- /login and /setup -------------------------------------------------------------------------------

function formParts() {
  return {
    error: document.getElementById('auth-error'),
    note: document.getElementById('auth-note'),
    submit: document.getElementById('auth-submit'),
  };
}

function show(el, text) {
  el.textContent = text || '';
  el.hidden = !text;
}

function busy(submit, on, label) {
  submit.disabled = on;
  if (label) submit.textContent = label;
}

function markInvalid(inputs, on) {
  for (const input of inputs) {
    if (on) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }
}

async function initLoginPage() {
  const params = new URLSearchParams(location.search);
  const form = document.getElementById('login-form');
  const username = document.getElementById('login-username');
  const password = document.getElementById('login-password');
  const { error, note, submit } = formParts();
  const next = safeNext(params.get('next'));

  if (params.get('username')) username.value = params.get('username');
  if (params.get('setup') === 'done') show(note, 'The admin account was created. Log in with it.');
  (username.value ? password : username).focus();

  fetch('/api/auth/status', { headers: { Accept: 'application/json' } })
    .then((response) => (response.ok ? response.json() : null))
    .then((status) => {
      if (status && !status.authEnabled) location.replace(next);
      else if (status?.setupRequired) {
        note.textContent = '';
        note.append(
          'No account exists yet. Open the one-time setup link that the server printed when it started, ',
          'or run ',
        );
        const code = document.createElement('code');
        code.textContent = 'skyframe users create NAME --admin';
        note.append(code, '.');
        note.hidden = false;
      }
    })
    .catch(() => {});

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    show(error, '');
    markInvalid([username, password], false);
    if (!username.value.trim() || !password.value) {
      markInvalid([!username.value.trim() ? username : password], true);
      show(error, 'Enter your username and password.');
      (!username.value.trim() ? username : password).focus();
      return;
    }
    busy(submit, true, 'Logging in…');
    const result = await postJson('/api/auth/login', { username: username.value.trim(), password: password.value });
    if (result.ok) {
      location.replace(next);
      return;
    }
    busy(submit, false, 'Log in');
    let message = result.error?.message || `Login failed (HTTP ${result.status}).`;
    if (result.status === 429) {
      const wait = Number(result.error?.retryAfter) || Number(result.response?.headers.get('Retry-After')) || 60;
      message = `Too many failed attempts. Try again in ${wait} s.`;
    }
    show(error, message);
    if (result.status === 401) {
      markInvalid([password], true);
      password.select();
    }
    password.focus();
  });
}

async function initSetupPage() {
  const params = new URLSearchParams(location.search);
  const token = params.get('token') || '';
  const form = document.getElementById('setup-form');
  const username = document.getElementById('setup-username');
  const password = document.getElementById('setup-password');
  const confirm = document.getElementById('setup-confirm');
  const { error, note, submit } = formParts();

  // Keep the one-time token out of the address bar (and history) once it has been read.
  if (token) history.replaceState(null, '', '/setup');
  else {
    show(note, 'This page needs the one-time setup link that the server printed when it started.');
    submit.disabled = true;
  }
  username.focus();

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    show(error, '');
    markInvalid([username, password, confirm], false);
    const name = username.value.trim();
    let problem = null;
    let field = null;
    if (!name) [problem, field] = ['Choose a username.', username];
    else if (password.value.length < 8) [problem, field] = ['The password needs at least 8 characters.', password];
    else if (password.value !== confirm.value) [problem, field] = ['The two passwords differ.', confirm];
    if (problem) {
      markInvalid([field], true);
      show(error, problem);
      field.focus();
      return;
    }
    busy(submit, true, 'Creating…');
    const result = await postJson('/api/auth/setup', { token, username: name, password: password.value });
    if (result.ok) {
      location.replace(`/login?setup=done&username=${encodeURIComponent(result.data.username)}`);
      return;
    }
    busy(submit, false, 'Create admin account');
    show(error, result.error?.message || `Setup failed (HTTP ${result.status}).`);
    if (result.error?.code === 'invalid_username' || result.error?.code === 'username_taken') username.focus();
    else if (result.error?.code === 'weak_password') password.focus();
  });
}

const page = document.body?.dataset.page;
if (page === 'login') initLoginPage();
else if (page === 'setup') initSetupPage();
