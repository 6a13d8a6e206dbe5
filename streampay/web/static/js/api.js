// The REST API as documented at /api/docs: JSON in and out, the bearer token, and its refresh.
const PREFIX = document.body.dataset.api || "/api/v1";
const STORE = "streampay.tokens";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.error = body && body.error;   // a stable string, e.g. "insufficient_funds"
    this.errors = body && body.errors; // field -> messages, for forms
  }
}

export const session = {
  get tokens() {
    try { return JSON.parse(localStorage.getItem(STORE)) || null; } catch { return null; }
  },
  get user() { return this.tokens && this.tokens.user; },
  save(tokens) { localStorage.setItem(STORE, JSON.stringify({ ...this.tokens, ...tokens })); },
  clear() { localStorage.removeItem(STORE); },
};

export function url(path) { return PREFIX + path; }

let refreshing = null;

async function refresh() {
  const tokens = session.tokens;
  if (!tokens || !tokens.refresh_token) return false;
  refreshing = refreshing || fetch(url("/auth/refresh"), {
    method: "POST",
    headers: { Authorization: `Bearer ${tokens.refresh_token}` },
  }).then(async (reply) => {
    if (!reply.ok) { session.clear(); return false; }
    session.save(await reply.json());
    return true;
  }).finally(() => { refreshing = null; });
  return refreshing;
}

// One call: `body` goes as JSON, `form` as multipart. A 401 refreshes the token once and retries.
export async function api(path, { method = "GET", body, form, query, raw = false } = {}, retried = false) {
  const headers = {};
  const tokens = session.tokens;
  if (tokens && tokens.access_token) headers.Authorization = `Bearer ${tokens.access_token}`;
  let payload;
  if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  if (form !== undefined) payload = form;
  const search = query ? "?" + new URLSearchParams(Object.entries(query).filter(([, v]) => v !== "" && v != null)) : "";
  const reply = await fetch(url(path) + search, { method, headers, body: payload });
  if (reply.status === 401 && !retried && tokens && await refresh()) {
    return api(path, { method, body, form, query, raw }, true);
  }
  if (!reply.ok) {
    let detail = null;
    try { detail = await reply.json(); } catch { /* not JSON */ }
    throw new ApiError(reply.status, detail);
  }
  if (raw) return reply;
  if (reply.status === 204) return null;
  const data = await reply.json();
  const pages = reply.headers.get("X-Pagination");
  return pages ? { items: data, pagination: JSON.parse(pages) } : data;
}

// A fresh access token, refreshed first when the stored one is about to lapse (for the WebSocket's auth event).
export async function accessToken() {
  const tokens = session.tokens;
  if (!tokens) return null;
  const payload = JSON.parse(atob(tokens.access_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  if (payload.exp * 1000 - Date.now() < 30_000) await refresh();
  return session.tokens && session.tokens.access_token;
}

// Multipart upload with progress events (fetch cannot report upload progress; XMLHttpRequest can).
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url(path));
    const tokens = session.tokens;
    if (tokens) xhr.setRequestHeader("Authorization", `Bearer ${tokens.access_token}`);
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.onload = () => (xhr.status < 300 ? resolve(xhr.response) : reject(new ApiError(xhr.status, xhr.response)));
    xhr.onerror = () => reject(new ApiError(0, { message: "The upload did not reach the server." }));
    xhr.send(form);
  });
}
