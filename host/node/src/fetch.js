// credlock behind plain `fetch`: every request carries the tenant's fresh token, and a 401
// asks credlock to refresh once across every process (never this process alone) before one
// retry. The same rule as the Python (httpx, requests) and Go (oauth2) adapters.
import { createHash } from 'node:crypto';

/** Lowercase hex SHA-256 of a token: what `Store.refresh({ rejectedSha256 })` compares. */
export function sha256Hex(text) {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * Whether a request body can be sent a second time. A stream is read by the first send and
 * gone; everything else `fetch` takes as a body is a value it reads afresh each time.
 */
export function replayable(body) {
  if (body == null) return true;
  if (typeof body === 'string') return true;
  if (body instanceof URLSearchParams || body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return true;
  if (typeof Blob !== 'undefined' && body instanceof Blob) return true;
  if (typeof FormData !== 'undefined' && body instanceof FormData) return true;
  return false;
}

/**
 * A `fetch` whose requests carry `tenant`'s access token from `store` (valid for at least
 * `minValid` seconds, refreshed by at most one process). A 401 is answered by
 * `store.refreshAsync(tenant, { rejected: <the token sent> })`: credlock refreshes only if
 * the store still holds that token, so processes meeting the same 401 together cost one
 * refresh and a process that lost the race gets the winner's token. The request is then
 * sent once more, only when its body can be replayed (a `ReadableStream` body, or a
 * `Request` carrying one, cannot: its 401 is returned as it came). A second 401 is returned
 * to the caller. A refresh that fails rejects with the `CredlockError` (`reauth-needed`:
 * log in again).
 */
export function authFetch(store, tenant, options = {}) {
  const base = options.fetch ?? globalThis.fetch;
  const minValid = options.minValid;
  if (typeof base !== 'function') throw new TypeError('authFetch: no fetch to wrap (pass options.fetch)');
  return async function credlockFetch(input, init) {
    // A Request input's own body is a stream: it can be sent once. Its headers and method
    // are kept by building the request anew with our Authorization header.
    const streamed = input instanceof Request ? input.body != null && init?.body === undefined : !replayable(init?.body);
    const send = async (token) => {
      const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
      headers.set('Authorization', `Bearer ${token}`);
      return base(input, { ...init, headers });
    };
    const sent = (await store.tokenInfoAsync(tenant, minValid === undefined ? undefined : { minValid })).token;
    const first = await send(sent);
    if (first.status !== 401 || streamed) return first;
    const fresh = (await store.refreshAsync(tenant, { rejected: sent })).token;
    // The first reply is dropped: release its connection before the retry.
    await first.body?.cancel().catch(() => {});
    return send(fresh);
  };
}
