// The HTTP API of `aifactory serve`, same origin: a session cookie, and the CSRF token sent
// as `X-CSRF-Token` on every call that changes something.

import { t } from './i18n.js';

let csrf = null;
let onUnauthorized = () => {};

export function setCsrf(token) { csrf = token || null; }
export function setUnauthorizedHandler(f) { onUnauthorized = f; }

/** A non-2xx answer: `status`, the server's `error` text and the `field` at fault, if any. */
export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field || null;
  }
}

// GETs that index.html started while the app loaded (the session check and the first page's
// data): path -> promise of {status, ok, text} (null when the request failed). They answer the
// first page only: endPrefetch() drops them when that page is done, on the next navigation and
// on any call that changes something.
let prefetched = (typeof window !== 'undefined' && window.__aifPrefetch) || null;

function takePrefetch(path) {
  return prefetched && Object.prototype.hasOwnProperty.call(prefetched, path) ? prefetched[path] : null;
}

/** Forgets the GETs index.html started: later calls ask the server afresh. */
export function endPrefetch() {
  prefetched = null;
  if (typeof window !== 'undefined') window.__aifPrefetch = null;
}

/**
 * Calls `path` and returns the parsed JSON (null for 204). Throws ApiError; a 401 also calls
 * the unauthorised handler (unless `quiet401`), which sends the browser to the login page.
 */
export async function api(path, { method = 'GET', body, quiet401 = false, signal } = {}) {
  if (method === 'GET' && body === undefined && !signal) {
    const early = takePrefetch(path);
    if (early) {
      const r = await early;
      if (r) return answer(r.status, r.ok, r.text, quiet401);
    }
  } else {
    endPrefetch();
  }
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-CSRF-Token'] = csrf;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, t('common.network'));
  }
  return answer(res.status, res.ok, await res.text(), quiet401);
}

function answer(status, ok, text, quiet401) {
  if (status === 204) return null;
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!ok) {
    const message = (data && data.error) || text.slice(0, 300) || t('common.http', { status });
    const err = new ApiError(status, message, data && data.field);
    if (status === 401 && !quiet401) onUnauthorized(err);
    throw err;
  }
  return data;
}

/** `path` with the defined, non-empty entries of `params` as a query string. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
