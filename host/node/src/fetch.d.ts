// Types of credlock/fetch (src/fetch.js).
import type { Store } from './index.js';

/** Lowercase hex SHA-256 of a token (what `Store.refresh({ rejectedSha256 })` compares). */
export function sha256Hex(text: string): string;

/** Whether a fetch body can be sent a second time (anything but a stream). */
export function replayable(body: unknown): boolean;

/**
 * A `fetch` whose requests carry `tenant`'s fresh access token. A 401 costs
 * `store.refreshAsync(tenant, { rejected })` (one refresh across every process meeting it) and
 * one retry, only when the body can be replayed; a second 401 is returned. A failed refresh
 * rejects with its `CredlockError` (`reauth-needed`: log in again).
 */
export function authFetch(
  store: Store,
  tenant: string,
  options?: { minValid?: number; fetch?: typeof fetch },
): typeof fetch;
