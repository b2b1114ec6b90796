// CredlockError: the component's `store-error`, with the same messages and hints as the Rust
// host (core/src/error.rs) and the CLI's exit code. No message ever contains a token, a
// client secret or key material: payloads are tenant names, field names, OAuth error codes
// and OS detail written by this host.

/** Text of an `io-error` (types.wit), as core/src/error.rs `io_detail` writes it. */
function ioDetail(e) {
  switch (e.tag) {
    case 'not-a-regular-file': return `not a regular file: ${e.val}`;
    case 'permission-denied': return `permission denied: ${e.val}`;
    case 'no-space': return `no space left: ${e.val}`;
    default: return String(e.val);
  }
}

function transportText(t) {
  switch (t.tag) {
    case 'bad-url': return `the token endpoint URL is not acceptable: ${t.val}`;
    case 'connect': return `cannot connect to the token endpoint: ${t.val}`;
    case 'timeout': return 'the token endpoint did not answer in time';
    case 'interrupted': return `the connection to the token endpoint broke after the request was sent: ${t.val}`;
    case 'reply-too-large': return "the token endpoint's reply is too large";
    default: return `token endpoint transport error (${t.tag})`;
  }
}

/** The message of a `store-error` variant: core/src/error.rs `Display`. */
export function describe(e) {
  const v = e.val;
  switch (e.tag) {
    case 'invalid-tenant': return `invalid tenant name: ${v}`;
    case 'invalid-token-response': return `invalid token response: ${v}`;
    case 'invalid-options': return `invalid options: ${v}`;
    case 'not-found': return `no credentials stored for tenant '${v}'`;
    case 'expired': return `the access token of '${v}' has expired and cannot be refreshed (no refresh token or token endpoint)`;
    case 'reauth-needed': return `the server rejected the refresh token of '${v}' (invalid_grant)`;
    case 'refresh-outcome-unknown': return `an earlier refresh of '${v}' was interrupted after its refresh token may have been spent; presenting it again could revoke the grant`;
    case 'endpoint':
      switch (v.tag) {
        case 'oauth': {
          const o = v.val;
          return `the token endpoint answered ${o.status} ${o.error}` + (o.errorDescription !== undefined ? `: ${o.errorDescription}` : '');
        }
        case 'server': return `the token endpoint failed with HTTP ${v.val}`;
        case 'malformed-reply': return `the token endpoint's reply is not a valid token response: ${v.val}`;
        case 'transport': return transportText(v.val);
        default: return `the token endpoint failed (${v.tag})`;
      }
    case 'lock-timeout': return `timed out after ${v.waitedMs} ms waiting for the ${v.lock} lock`;
    case 'io':
      return v.tag === 'too-large'
        ? `the store file is too large (${v.val} bytes)`
        : `store I/O failed: ${ioDetail(v.val)}`;
    case 'key':
      switch (v.tag) {
        case 'no-key-source': return 'no key source is configured';
        case 'no-matching-slot': return `none of the configured keys opens this store; it can be opened by: ${v.val.join(', ')}`;
        case 'wrong-passphrase': return 'wrong passphrase for this store';
        case 'wrong-key-file': return 'the key file does not open this store';
        case 'malformed-slot': return `a key slot of the store is damaged: ${v.val}`;
        case 'io': return `cannot read the key: ${ioDetail(v.val)}`;
        case 'keyring-entry-missing': {
          const { backend, otherSlots } = v.val;
          return `the ${backend} keyring no longer holds this store's key (wiped, rebooted, or another machine)`
            + (otherSlots.length ? `; it can still be opened by its other slots: ${otherSlots.join(', ')}` : '; no other slot can open the store');
        }
        case 'keyring': return `the OS keyring failed: ${v.val}`;
        case 'slot-unavailable': return `cannot make that key slot: ${v.val}`;
        default: return `key error (${v.tag})`;
      }
    case 'not-a-store': return `not a credlock store: ${v}`;
    case 'unsupported-version': return `the store has format version ${v}, which this credlock does not know`;
    case 'corrupt': return `the store is damaged: ${v}`;
    case 'slot-change':
      switch (v.tag) {
        case 'no-such-slot': return `the store has no key slot ${v.val}`;
        case 'last-slot': return "that is the store's only key slot; removing it would leave nothing that opens the store";
        case 'only-volatile-left': return `only volatile slots would remain (${v.val.join(', ')}), and they are lost at reboot`;
        case 'too-many-slots': return `the store already has ${v.val} key slots, the most a header holds`;
        default: return `key slot change refused (${v.tag})`;
      }
    case 'recover':
      switch (v.tag) {
        case 'store-readable': return 'the store opens; restoring the backup would discard the writes made since it';
        case 'no-backup': return 'there is no backup of the store to restore';
        case 'backup-unreadable': return `the backup cannot be read either: ${v.val}`;
        default: return `recover refused (${v.tag})`;
      }
    case 'import-conflict': return `these tenants already exist: ${v.join(', ')}; nothing was imported`;
    default: return `credlock error (${e.tag})`;
  }
}

/** What to do next: core/src/error.rs `recommendation`, with JS option names. */
export function recommendation(e) {
  const v = e.val;
  switch (e.tag) {
    case 'invalid-tenant': return 'use 1-128 characters from letters, digits and . _ @ + : -';
    case 'invalid-token-response': return "pass the token endpoint's JSON response, with access_token";
    case 'invalid-options': return 'check the timeouts you configured';
    case 'not-found': return 'store credentials first with put()';
    case 'expired':
    case 'reauth-needed': return 'log in again and store the new tokens with put()';
    case 'refresh-outcome-unknown': return 'log in again; if your server tolerates one reuse, set retry_unknown_refresh for this tenant';
    case 'endpoint':
      if ((v.tag === 'transport' && (v.val.tag === 'timeout' || v.val.tag === 'interrupted')) || v.tag === 'malformed-reply') {
        return 'the refresh token may have been spent; if the next attempt reports an unknown outcome, log in again';
      }
      if (v.tag === 'oauth') return 'check the client id, secret and authentication method stored for this tenant';
      return 'retry later; the stored tokens are unchanged';
    case 'lock-timeout': return 'another process holds the lock; retry, or raise lockTimeout';
    case 'io': return "check the store directory's permissions and free space; nothing was changed";
    case 'key':
      if (v.tag === 'no-matching-slot') return 'provide a key that opens one of the listed slots (passphrase / CREDLOCK_PASSPHRASE or the key file)';
      if (v.tag === 'wrong-passphrase') return 'check the passphrase (CREDLOCK_PASSPHRASE); the store was not changed';
      if (v.tag === 'keyring-entry-missing') return 'open it with one of the other slots, then add a keyring slot again; never re-initialise';
      if (v.tag === 'keyring') return 'check that the keyring service is running and unlocked, or use another slot';
      if (v.tag === 'slot-unavailable') return 'configure that key source (the passphrase, the key file) and retry; the store was not changed';
      return 'check the key file or passphrase; the store was not changed';
    case 'not-a-store':
    case 'corrupt': return 'the damaged file was not changed; recover() restores the previous good version (credentials.sealed.bak)';
    case 'unsupported-version': return 'use the credlock version that wrote this store';
    case 'slot-change':
      if (v.tag === 'only-volatile-left') return 'add a durable slot first (passphrase, key-file or keyring), or pass allowVolatileOnly';
      return 'see slots()';
    case 'recover':
      if (v.tag === 'store-readable') return 'nothing needs recovering; use force only to roll back on purpose';
      return 'the store was not changed; restore from your own backups or log in again';
    case 'import-conflict': return 'import with replace to overwrite them, or delete them first';
    default: return 'this is a bug in credlock; please report it';
  }
}

/** The CLI's exit code for the same failure (README, "Exit codes"). */
export function exitCode(code) {
  switch (code) {
    case 'invalid-tenant': case 'invalid-token-response': case 'invalid-options': return 2;
    case 'not-found': return 3;
    case 'expired': case 'reauth-needed': case 'refresh-outcome-unknown': return 4;
    case 'lock-timeout': return 5;
    case 'key': case 'not-a-store': case 'unsupported-version': case 'corrupt': return 6;
    case 'endpoint': return 7;
    case 'io': return 8;
    case 'slot-change': case 'recover': case 'import-conflict': return 9; // refused; nothing changed
    default: return 10;
  }
}

/** u64 payloads arrive as BigInt; give numbers where they fit (they always do in practice). */
export function plain(value) {
  if (typeof value === 'bigint') return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  if (value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = plain(v);
    return out;
  }
  return value;
}

export class CredlockError extends Error {
  /**
   * @param {string} code the `store-error` case (`not-found`, `lock-timeout`, ...) or `internal`
   * @param {string} message
   * @param {object} [fields] kind, detail, hint
   */
  constructor(code, message, { kind, detail, hint, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'CredlockError';
    this.code = code;
    this.kind = kind;
    this.detail = detail;
    this.hint = hint;
    this.exitCode = exitCode(code);
  }

  /** From the component's `store-error` value. */
  static fromStoreError(e) {
    const kind = ['endpoint', 'io', 'key', 'slot-change', 'recover'].includes(e.tag) ? e.val.tag : undefined;
    return new CredlockError(e.tag, describe(e), { kind, detail: plain(e.val), hint: recommendation(e) });
  }
}
