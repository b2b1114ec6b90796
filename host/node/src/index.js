// credlock for Node.js: OAuth credentials that many processes share safely.
//
// The store logic is the credlock WebAssembly component (the same one the Rust CLI runs),
// transpiled by jco; this package supplies its platform imports: flock(2) locks (native
// addon), atomic durable files, AES-256-GCM key slots with argon2id, and a synchronous
// HTTP client for token endpoints. Every call is synchronous: the component's exports are
// synchronous functions, and so are its imports.
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { CredlockError, plain } from './errors.js';
import { Keyring, DEFAULT_KDF } from './platform/sealing.js';
import { instantiateStore, preload } from './runtime.js';

export { CredlockError };

const DAY12_MS = Math.floor(0xffffffff / 4);

function invalid(why) {
  return new CredlockError('invalid-options', `invalid options: ${why}`, {
    detail: why,
    hint: 'check the options passed to Store.open (and the CREDLOCK_* environment)',
  });
}

/** Seconds (number or numeric string) to u32 milliseconds (main.rs `seconds_ms`). */
function secondsMs(name, s) {
  const n = typeof s === 'string' ? (s.trim() === '' ? NaN : Number(s.trim())) : s;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || n * 1000 > DAY12_MS) {
    throw invalid(`${name} must be a number of seconds between 0 and 12 days`);
  }
  return Math.round(n * 1000);
}

/** clap's reading of a boolean flag's environment variable. */
function envFlag(v) {
  if (v === undefined) return false;
  return !['', 'n', 'no', 'f', 'false', 'off', '0'].includes(v.trim().toLowerCase());
}

/** `$XDG_DATA_HOME/credlock`, else `~/.local/share/credlock` (the CLI's default). */
export function defaultStoreDir() {
  const xdg = process.env.XDG_DATA_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.local', 'share');
  return path.join(base, 'credlock');
}

// Keyrings are shared by every Store of this process opened with the same key sources, so
// an unwrapped key (and a passphrase's argon2id) is computed once per process. The map's
// key is an HMAC under a per-process random key: no passphrase is kept in a map key.
const keyrings = new Map();
const keyringSecret = crypto.randomBytes(32);
function keyringFor(sources) {
  const id = crypto.createHmac('sha256', keyringSecret)
    .update(JSON.stringify([sources.passphrase ?? null, sources.keyFile ?? null, sources.createKeyFile, sources.kdf]))
    .digest('hex');
  let k = keyrings.get(id);
  if (!k) {
    k = new Keyring(sources);
    keyrings.set(id, k);
  }
  return k;
}

function checkKdf(kdf) {
  const k = { ...DEFAULT_KDF, ...kdf };
  const int = (v, lo, hi) => Number.isInteger(v) && v >= lo && v <= hi;
  if (!int(k.memoryKiB, 8, 1024 * 1024) || !int(k.iterations, 1, 64) || !int(k.parallelism, 1, 16)
      || k.memoryKiB < 8 * k.parallelism) {
    throw invalid('kdf must have memoryKiB 8..1048576 (at least 8 per lane), iterations 1..64, parallelism 1..16');
  }
  return { memoryKiB: k.memoryKiB, iterations: k.iterations, parallelism: k.parallelism };
}

/** Resolve options and environment the way the CLI does (host/src/main.rs `config`). */
function resolveConfig(dirArg, opts) {
  const env = process.env;
  if (dirArg !== undefined && (typeof dirArg !== 'string' || dirArg === '')) {
    throw invalid('the store path must be a non-empty string');
  }
  const dir = path.resolve(dirArg ?? (env.CREDLOCK_STORE || defaultStoreDir()));
  let passphrase;
  if (opts.passphrase === undefined || opts.passphrase === null) {
    passphrase = env.CREDLOCK_PASSPHRASE || undefined;
  } else {
    if (typeof opts.passphrase !== 'string') throw invalid('the passphrase must be a string');
    if (opts.passphrase === '') throw invalid('the passphrase is empty');
    passphrase = opts.passphrase;
  }
  const explicitKeyFile = opts.keyFile ?? (env.CREDLOCK_KEY_FILE || undefined);
  const keyFile = path.resolve(explicitKeyFile ?? path.join(dir, 'key'));
  const lockTimeoutMs = secondsMs('lockTimeout', opts.lockTimeout ?? env.CREDLOCK_LOCK_TIMEOUT ?? 10);
  const httpTimeoutMs = Math.max(1, secondsMs('httpTimeout', opts.httpTimeout ?? env.CREDLOCK_HTTP_TIMEOUT ?? 30));
  if (httpTimeoutMs + 2 * lockTimeoutMs > 0xffffffff) {
    throw invalid('the lock and HTTP timeouts add up to more than 49 days');
  }
  const allowInsecureHttp = opts.allowInsecureHttp ?? envFlag(env.CREDLOCK_ALLOW_INSECURE_HTTP);
  return {
    dir,
    sources: {
      passphrase,
      keyFile,
      // With a passphrase and no explicit key file, a new store gets only the passphrase
      // slot; an existing store's key file is still used to open it if present.
      createKeyFile: passphrase === undefined || explicitKeyFile !== undefined,
      kdf: checkKdf(opts.kdf),
    },
    options: { lockTimeoutMs, httpTimeoutMs },
    policy: { allowInsecureHttp: !!allowInsecureHttp },
  };
}

const U64_MAX = (1n << 64n) - 1n;

function minValidMs(opts) {
  const s = opts?.minValid ?? 60;
  if (typeof s !== 'number' || Number.isNaN(s) || s < 0) {
    throw invalid('minValid must be a non-negative number of seconds');
  }
  // Saturating, like the CLI's `--min-valid`.
  if (!Number.isFinite(s)) return U64_MAX;
  const ms = BigInt(Math.round(s * 1000));
  return ms > U64_MAX ? U64_MAX : ms;
}

function checkTenant(tenant) {
  if (typeof tenant !== 'string') {
    throw new CredlockError('invalid-tenant', 'invalid tenant name: not a string', {
      detail: 'not a string',
      hint: 'use 1-128 characters from letters, digits and . _ @ + : -',
    });
  }
  return tenant;
}

function rejectedHash(opts) {
  const token = opts?.rejected ?? undefined;
  const hash = opts?.rejectedSha256 ?? undefined;
  if (token !== undefined && hash !== undefined) throw invalid('give rejected or rejectedSha256, not both');
  if (token !== undefined) {
    // Hashed here: the refused token itself never leaves this process.
    return crypto.createHash('sha256').update(String(token).trim(), 'utf8').digest('hex');
  }
  return hash === undefined ? undefined : String(hash);
}

function accessToken(t) {
  return plain(t);
}

/** An open credential store. Every method is synchronous. */
export class Store {
  #dir;
  #keyring;
  #policy;
  #options;
  #instance = null;
  #closed = false;

  /** @private use Store.open */
  constructor(config) {
    this.#dir = config.dir;
    this.#keyring = keyringFor(config.sources);
    this.#policy = config.policy;
    this.#options = config.options;
  }

  /**
   * Open the store in `dir` (default: `CREDLOCK_STORE`, else `$XDG_DATA_HOME/credlock`).
   * Nothing is read or created until the first call.
   */
  static open(dir, opts) {
    if (dir !== undefined && dir !== null && typeof dir === 'object') {
      opts = dir;
      dir = undefined;
    }
    const config = resolveConfig(dir ?? undefined, opts ?? {});
    preload();
    return new Store(config);
  }

  /** The store directory. */
  get path() {
    return this.#dir;
  }

  #call(fn) {
    if (this.#closed) throw new Error('this credlock Store is closed');
    if (!this.#instance) {
      try {
        this.#instance = instantiateStore({ dir: this.#dir, keyring: this.#keyring, policy: this.#policy });
      } catch (e) {
        throw new CredlockError('internal', `internal error in the credlock runtime: ${e?.message ?? e}`, {
          cause: e,
          hint: 'this is a bug in credlock; please report it',
        });
      }
    }
    try {
      return fn(this.#instance.store, this.#options);
    } catch (e) {
      const payload = e && typeof e === 'object' && Object.hasOwn(e, 'payload') ? e.payload : undefined;
      if (payload && typeof payload.tag === 'string') throw CredlockError.fromStoreError(payload);
      // A trap: this instance may not be entered again. Drop it and any lock it held.
      const dead = this.#instance;
      this.#instance = null;
      dead.releaseLocks();
      throw new CredlockError('internal', `internal error in the credlock runtime: ${e?.message ?? e}`, {
        cause: e,
        hint: 'this is a bug in credlock; please report it',
      });
    }
  }

  /** Create the store if it does not exist. True if it was created. */
  init() {
    return this.#call((s, o) => s.init(o));
  }

  /**
   * Store a token response (an object, or its JSON text) for `tenant`, creating the store if
   * needed. Returns the tenant's revision and the store generation after the write.
   */
  put(tenant, tokenResponse) {
    checkTenant(tenant);
    let json = tokenResponse;
    if (typeof json !== 'string') {
      try {
        json = JSON.stringify(tokenResponse);
      } catch {
        json = undefined;
      }
    }
    if (typeof json !== 'string') {
      throw new CredlockError('invalid-token-response', 'invalid token response: not a JSON object', {
        detail: 'not a JSON object',
        hint: "pass the token endpoint's JSON response, with access_token",
      });
    }
    return plain(this.#call((s, o) => s.put(o, tenant, json)));
  }

  /** The access token, valid for at least `minValid` more seconds (default 60), refreshed if needed. */
  token(tenant, opts) {
    return this.tokenInfo(tenant, opts).token;
  }

  /** Like `token`, with the token type, expiry, revision and whether this call refreshed. */
  tokenInfo(tenant, opts) {
    checkTenant(tenant);
    const ms = minValidMs(opts);
    return accessToken(this.#call((s, o) => s.token(o, tenant, ms)));
  }

  /**
   * Refresh now, even if the token is still fresh. With `rejected` (an access token a
   * resource server refused with 401) or `rejectedSha256` (its lowercase hex SHA-256, or a
   * prefix of at least 16 hex characters), refresh only if the stored access token is still
   * that one; otherwise return the stored, newer one.
   */
  refresh(tenant, opts) {
    checkTenant(tenant);
    const rejected = rejectedHash(opts);
    return accessToken(this.#call((s, o) => s.refresh(o, tenant, rejected)));
  }

  /** Every tenant, sorted by name, without secrets. */
  list() {
    return plain(this.#call((s, o) => s.list(o)));
  }

  /** Remove a tenant. False if it did not exist. */
  delete(tenant) {
    checkTenant(tenant);
    return this.#call((s, o) => s.delete(o, tenant));
  }

  /** What the store is: generation, format version, key id, slot kinds, tenant count. */
  info() {
    return plain(this.#call((s, o) => s.info(o)));
  }

  /** Drop the component instance. Further calls throw. Idempotent. */
  close() {
    this.#closed = true;
    if (this.#instance) {
      this.#instance.releaseLocks();
      this.#instance = null;
    }
  }

  /** `using store = Store.open(...)` closes it at the end of the block. */
  [Symbol.dispose ?? Symbol.for('dispose')]() {
    this.close();
  }
}
