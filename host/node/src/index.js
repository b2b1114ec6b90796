// credlock for Node.js: OAuth credentials that many processes share safely.
//
// The store logic is the credlock WebAssembly component (the same one the Rust CLI runs),
// transpiled by jco; this package supplies its platform imports: flock(2) locks (native
// addon), atomic durable files, AES-256-GCM key slots with argon2id, and a synchronous
// HTTP client for token endpoints. Every call is synchronous: the component's exports are
// synchronous functions, and so are its imports.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CredlockError, plain } from './errors.js';
import { MAX_STORE_BYTES } from './platform/files.js';
import { syncDir } from './platform/os.js';
import { Keyring, DEFAULT_KDF, VOLATILE_SLOT_KINDS, describeSlot } from './platform/sealing.js';
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

function checkPassphrase(p) {
  if (typeof p !== 'string') throw invalid('the passphrase must be a string');
  if (p === '') throw invalid('the passphrase is empty');
  return p;
}

function invalidTokens(why) {
  return new CredlockError('invalid-token-response', `invalid token response: ${why}`, {
    detail: why,
    hint: "pass the token endpoint's JSON response, with access_token",
  });
}

/** The header's slots as `slots()` shows them: never the wrapped key. */
function slotInfos(slots) {
  return slots.map((s, index) => ({
    index,
    kind: s.kind,
    describe: describeSlot(s.kind, s.data),
    durable: !VOLATILE_SLOT_KINDS.includes(s.kind),
  }));
}

/**
 * A source file's contents and the identity of what was read (one open file, so the two
 * agree). Follows symlinks, as any reader of the caller's file would; O_NONBLOCK so that a
 * FIFO at the path is refused rather than waited on. Throws Node's fs errors.
 */
function readSource(file) {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    if (!st.isFile()) throw invalidTokens(`${file} is not a regular file`);
    const chunks = [];
    let total = 0;
    const buf = Buffer.allocUnsafe(64 * 1024);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) {
      total += n;
      if (total > MAX_STORE_BYTES) throw invalidTokens(`${file} is larger than ${MAX_STORE_BYTES} bytes`);
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
    return { bytes: Buffer.concat(chunks, total), identity: [st.dev, st.ino, st.size, st.mtimeNs] };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Remove an imported source file durably; undefined if removed, else why it was kept.
 * A program may rewrite its token file at any time (a refresh rotates the refresh token):
 * removing a newer version than the one imported would lose that token, so the file must
 * still be the very one read. lstat, not stat: unlinking a symlink leaves its target, and
 * the plaintext would stay.
 */
function removeSource(file, identity, report) {
  if (report.skipped.length) return `entries were skipped: ${report.skipped.map(([name]) => name).join(', ')}`;
  if (!report.imported.length) return 'nothing was imported';
  let st;
  try {
    st = fs.lstatSync(file, { bigint: true });
  } catch (e) {
    return `it could not be checked: ${e.code ?? e.message}`;
  }
  const now = [st.dev, st.ino, st.size, st.mtimeNs];
  if (!st.isFile() || now.some((v, i) => v !== identity[i])) return 'it changed (or is a symlink) since it was read';
  try {
    fs.unlinkSync(file);
    syncDir(path.dirname(file));
  } catch (e) {
    return `it could not be removed: ${e.code ?? e.message}`;
  }
  return undefined;
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
      return fn(this.#instance.store, this.#options, this.#instance);
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

  // ----- maintenance: each call one atomic change under the exclusive store lock -----

  /**
   * The header's key slots, in order: `[{ index, kind, describe }]`. Opens the store, so it
   * also tells at once whether the configured key sources work. An absent store has none.
   */
  slots() {
    return slotInfos(this.#call((s, o) => s.slots(o)));
  }

  /**
   * Add a key slot; returns the new slot list. An absent store is created first.
   * `key-file`: the configured key file (created if absent, when this Store would create one
   * for a new store); a second slot for the same key file is refused. `passphrase`:
   * `{ passphrase }` is the NEW passphrase for the slot (required); the passphrase this Store
   * was opened with is not used. Other kinds are `key` / `slot-unavailable`.
   */
  addSlot(kind, opts) {
    if (typeof kind !== 'string') throw invalid('the slot kind must be a string');
    let passphrase;
    if (opts?.passphrase !== undefined && opts?.passphrase !== null) {
      if (kind !== 'passphrase') throw invalid('a passphrase is given only for a passphrase slot');
      passphrase = checkPassphrase(opts.passphrase);
    }
    return slotInfos(this.#call((s, o, instance) => {
      // Seen only by this call's add-slot import, then forgotten.
      instance.slotSources.passphrase = passphrase;
      try {
        return s.addSlot(o, kind);
      } finally {
        instance.slotSources.passphrase = undefined;
      }
    }));
  }

  /**
   * Remove slot `index` (see `slots()`); returns the new slot list. Refuses the last slot,
   * and leaving only volatile slots (`kernel-keyring`) unless `allowVolatileOnly`. The
   * backup, which still holds the removed slot, is removed once the new store is durable.
   */
  removeSlot(index, opts) {
    if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) {
      throw invalid('the slot index must be a non-negative integer (see slots())');
    }
    return slotInfos(this.#call((s, o) => s.removeSlot(o, index, !!opts?.allowVolatileOnly)));
  }

  /**
   * Re-seal the store under a new data key wrapped by the same sources (same key file, same
   * passphrase), in one atomic replace; then remove the backup (sealed under the old key).
   * A slot whose source is not configured is `key` / `slot-unavailable`, a passphrase that
   * does not open its slot `key` / `wrong-passphrase`; the store is then unchanged.
   * Returns the new `info()`.
   */
  rekey() {
    return plain(this.#call((s, o) => s.rekey(o)));
  }

  /**
   * Import plaintext tokens in one atomic write: a token response (then `tenant` names it)
   * or an object mapping tenant names to token responses, such as an agent's `auth.json`
   * (`{type: 'oauth', access, refresh, expires}` entries are understood; API keys are
   * skipped and reported). Existing tenants are `import-conflict` unless `replace`.
   * Returns `{ imported, skipped: [[name, why]], generation }`.
   */
  importTokens(source, opts) {
    let text = source;
    if (source instanceof Uint8Array) {
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(source);
      } catch {
        throw invalidTokens('the source is not UTF-8');
      }
    } else if (typeof source !== 'string') {
      try {
        text = JSON.stringify(source);
      } catch {
        text = undefined;
      }
      if (typeof text !== 'string') throw invalidTokens('the source is not a JSON object');
    }
    const tenant = opts?.tenant ?? undefined;
    if (tenant !== undefined) checkTenant(tenant);
    return plain(this.#call((s, o) => s.importTokens(o, text, tenant, !!opts?.replace)));
  }

  /**
   * `importTokens` of a file's contents, plus `sourceRemoved` and, when it was kept despite
   * `removeSource`, `keptReason`. The file is removed once the import is durable, and only if
   * something was imported, nothing was skipped and the file is still the one that was read
   * (not replaced or rewritten meanwhile, not a symlink). Reading it throws Node's fs errors.
   */
  importFile(file, opts) {
    const { bytes, identity } = readSource(file);
    let text;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw invalidTokens(`${file} is not UTF-8`);
    } finally {
      bytes.fill(0);
    }
    const report = this.importTokens(text, opts);
    if (!opts?.removeSource) return { ...report, sourceRemoved: false };
    const keptReason = removeSource(file, identity, report);
    return keptReason === undefined ? { ...report, sourceRemoved: true } : { ...report, sourceRemoved: false, keptReason };
  }

  /**
   * Restore the backup (`credentials.sealed.bak`), only when the store cannot be read
   * (`recover` / `store-readable` otherwise, unless `{ force: true }`). The store file, if
   * any, is moved aside first (`quarantinedAs`), never deleted; restored refresh tokens that
   * may have been spent since the backup are marked (`refreshUnknown`).
   */
  recover(opts) {
    return plain(this.#call((s, o) => s.recover(o, !!opts?.force)));
  }

  /**
   * Move an unreadable store file aside (`credentials.sealed.corrupt-<unix ms>`) so that a
   * new store can be made; returns that name. Refuses a store that opens.
   */
  quarantine() {
    return this.#call((s, o) => s.quarantine(o));
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
