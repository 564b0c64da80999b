// Thin client for the SkyFrame HTTP API (docs/api-contract.md). Same origin, relative paths.

import { redirectToLogin } from './auth.js';

/** An HTTP error with the server's `{error: {code, message}}` body, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** Worth trying again later: the network dropped or the server was briefly unavailable. */
  get retryable() {
    if (this.code === 'upload_busy') return true; // another request is still writing this upload
    return this.status === 0 || this.status === 408 || this.status === 429 || (this.status >= 500 && this.status !== 507);
  }
}

const FALLBACK_MESSAGES = {
  0: 'The server could not be reached. Check your connection.',
  404: 'Not found.',
  413: 'The file is too large.',
  415: 'This file type is not supported.',
  500: 'The server hit an internal error.',
  502: 'The server is unavailable (bad gateway).',
  503: 'The server is busy. Try again shortly.',
  507: 'The server is out of storage space.',
};

/** Build an ApiError from a status and a parsed (or raw) response body. */
export function errorFromBody(status, body) {
  const err = body && typeof body === 'object' ? body.error ?? null : null;
  if (err && typeof err === 'object') {
    const { code, message, ...details } = err;
    return new ApiError(status, code || 'http_error', message || fallbackMessage(status), details);
  }
  const detail = body && typeof body === 'object' ? body.detail : null;
  const message = typeof detail === 'string' ? detail : fallbackMessage(status);
  return new ApiError(status, 'http_error', message);
}

function fallbackMessage(status) {
  return FALLBACK_MESSAGES[status] ?? `Request failed (HTTP ${status}).`;
}

export function parseJson(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** fetch() wrapper: JSON in and out, ApiError on failure. */
export async function request(path, { method = 'GET', json, signal, headers = {} } = {}) {
  const init = { method, signal, headers: { Accept: 'application/json', ...headers } };
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'network', FALLBACK_MESSAGES[0]);
  }
  const body = parseJson(await response.text().catch(() => ''));
  if (response.status === 401 && !path.startsWith('/api/auth/')) redirectToLogin(); // signed out
  if (!response.ok) throw errorFromBody(response.status, body);
  return body;
}

const enc = encodeURIComponent;

export const uploadsApi = {
  list: ({ limit = 50, offset = 0 } = {}) => request(`/api/uploads?limit=${limit}&offset=${offset}`),
  get: (id) => request(`/api/uploads/${enc(id)}`),
  init: (body) => request('/api/uploads/init', { method: 'POST', json: body }),
  complete: (id) => request(`/api/uploads/${enc(id)}/complete`, { method: 'POST' }),
  remove: (id) => request(`/api/uploads/${enc(id)}`, { method: 'DELETE' }),
  jobs: (id) => request(`/api/uploads/${enc(id)}/jobs`),
  fileUrl: (id) => `/api/uploads/${enc(id)}/file`,
  downloadUrl: (id) => `/api/uploads/${enc(id)}/download`,
  thumbnailUrl: (id) => `/api/uploads/${enc(id)}/thumbnail`,
};

export const jobsApi = {
  models: () => request('/api/models'),
  create: (body) => request('/api/jobs/create', { method: 'POST', json: body }),
  get: (id) => request(`/api/jobs/${enc(id)}`),
  cancel: (id) => request(`/api/jobs/${enc(id)}/cancel`, { method: 'POST' }),
  retry: (id) => request(`/api/jobs/${enc(id)}/retry`, { method: 'POST' }),
  eventsUrl: (id) => `/api/jobs/${enc(id)}/events`,
  downloadUrl: (id) => `/api/jobs/${enc(id)}/download`,
};
