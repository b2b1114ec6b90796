// credlock for Node.js: OAuth credentials that many processes share safely.
//
// A thin layer over the napi-rs addon (native/), which binds the credlock host library:
// locks, files, key slots, the KDF, AEAD, HTTP, the CREDLOCK_* environment and every error
// message are Rust's. This file only converts arguments and results and turns the host's
// error reports into CredlockError. Sync methods block the calling thread; the `*Async`
// methods run on the libuv thread pool, so a lock wait or a refresh never blocks the event
// loop.
import { native } from './native.js';

const { NativeStore, ERROR_MARK } = native;

/** An error of a store operation, built from the host's report (host/src/report.rs). */
export class CredlockError extends Error {
  constructor(report, options) {
    super(report.message, options);
    this.name = 'CredlockError';
    this.code = report.code;
    this.kind = report.case ?? undefined;
    this.detail = camel(report.detail ?? {});
    this.hint = report.recommendation;
    this.exitCode = report.exit_code;
  }
}

const camelKey = (k) => k.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
function camel(v) {
  if (Array.isArray(v)) return v.map(camel);
  if (v && typeof v === 'object') {
    const out = {};
    for (const [k, x] of Object.entries(v)) if (x !== null) out[camelKey(k)] = camel(x);
    return out;
  }
  return v;
}

/** A thrown native error as what it is: a CredlockError for a store error. */
function convert(e) {
  if (e instanceof Error && typeof e.message === 'string' && e.message.startsWith(ERROR_MARK)) {
    return new CredlockError(JSON.parse(e.message.slice(ERROR_MARK.length)));
  }
  return e;
}

function call(fn) {
  try {
    return fn();
  } catch (e) {
    throw convert(e);
  }
}

async function callAsync(fn) {
  try {
    return await fn();
  } catch (e) {
    throw convert(e);
  }
}

/** `undefined` for null, the value otherwise (napi takes both as absent). */
const opt = (v) => (v === null ? undefined : v);

/** A token response as JSON text; undefined (refused by the host) if it is not one. */
function json(v) {
  if (typeof v === 'string') return v;
  try {
    const s = JSON.stringify(v);
    return typeof s === 'string' ? s : undefined;
  } catch {
    return undefined;
  }
}

function source(v) {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return json(v) ?? '';
}

const num = (v) => (typeof v === 'number' ? v : Number.NaN);
const minValid = (o) => (o?.minValid === undefined || o?.minValid === null ? undefined : num(o.minValid));
const str = (v) => (v == null ? undefined : String(v));
// An attachment is text: a program that keeps an object stringifies it itself, so what it
// reads back is exactly what it wrote. null or undefined removes the attachment.
function attachmentValue(v) {
  if (v == null) return undefined;
  if (typeof v !== 'string') throw new TypeError('an attachment value is a string (or null to remove it)');
  return v;
}

// The host's name of a kdf setting (`kdf` is the one setting whose JS names are not the
// host's in camel case; index.d.ts keeps the names Node users already write).
const KDF_NAMES = { memoryKiB: 'm_cost_kib', iterations: 't_cost', parallelism: 'p_cost' };
const snakeKey = (k) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * `Store.open`'s settings as the JSON object the host reads (credlock::OpenOptions, the one
 * declaration every binding shares): each camelCase key in snake case, null or undefined
 * left out. Values are passed as given, so the host refuses a wrong one (or an unknown key)
 * in the same words as in every other language; a value JSON cannot carry (NaN, a
 * function) goes as text for the host to refuse rather than silently becoming "absent".
 */
function openOptions(dir, o) {
  const out = {};
  if (dir != null) out.store_dir = String(dir);
  const value = (v) => {
    if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
    if (typeof v === 'string' || typeof v === 'boolean') return v;
    return v instanceof URL ? v.pathname : String(v);
  };
  for (const [k, v] of Object.entries(o)) {
    if (v == null) continue;
    if (k === 'dir') {
      out.store_dir = String(v);
    } else if (k === 'kdf') {
      out.kdf = {};
      for (const [kk, vv] of Object.entries(v)) {
        if (vv != null) out.kdf[KDF_NAMES[kk] ?? kk] = value(vv);
      }
    } else {
      out[snakeKey(k)] = value(v);
    }
  }
  return JSON.stringify(out);
}

/** The version every credlock artifact shares, e.g. `0.1.0` (from the addon: what runs). */
export const version = native.version();
/** Hex SHA-256 of the component the addon embeds: two builds of one version can differ. */
export const componentSha256 = native.componentSha256();

/** `$XDG_DATA_HOME/credlock`, else `~/.local/share/credlock` (the CLI's default). */
export function defaultStoreDir() {
  return native.defaultStoreDir();
}

/** An open credential store. */
export class Store {
  #n;

  /** @private use Store.open */
  constructor(n) {
    this.#n = n;
  }

  /**
   * Open the store in `dir` (default: `$CREDLOCK_STORE`, else `$XDG_DATA_HOME/credlock`),
   * configured as the CLI is. Nothing is read or created until the first call.
   */
  static open(dir, opts) {
    if (dir !== undefined && dir !== null && typeof dir === 'object') {
      opts = dir;
      dir = undefined;
    }
    return new Store(call(() => NativeStore.open(openOptions(dir, opts ?? {}))));
  }

  /** The store directory. */
  get path() {
    return this.#n.path;
  }

  init() { return call(() => this.#n.init()); }
  put(tenant, tokenResponse) { return call(() => this.#n.put(tenant, json(tokenResponse))); }
  token(tenant, opts) { return call(() => this.#n.token(tenant, minValid(opts))); }
  tokenInfo(tenant, opts) { return call(() => this.#n.tokenInfo(tenant, minValid(opts))); }
  refresh(tenant, opts) {
    return call(() => this.#n.refresh(tenant, str(opts?.rejected), str(opts?.rejectedSha256)));
  }
  list() { return call(() => this.#n.list()); }
  delete(tenant) { return call(() => this.#n.delete(tenant)); }
  attachment(tenant, name) { return call(() => this.#n.attachment(tenant, String(name))); }
  setAttachment(tenant, name, value) {
    return call(() => this.#n.setAttachment(tenant, String(name), attachmentValue(value)));
  }
  slots() { return call(() => this.#n.slots()); }
  addSlot(kind, opts) { return call(() => this.#n.addSlot(String(kind), opt(opts?.passphrase))); }
  removeSlot(index, opts) {
    return call(() => this.#n.removeSlot(num(index), opt(opts?.allowVolatileOnly)));
  }
  importTokens(src, opts) {
    return call(() => this.#n.importTokens(source(src), str(opts?.tenant), opt(opts?.replace), str(opts?.kind), str(opts?.account)));
  }
  importFile(file, opts) {
    return call(() => this.#n.importFile(String(file), str(opts?.tenant), opt(opts?.replace), opt(opts?.removeSource), str(opts?.kind), str(opts?.account)));
  }
  quarantine(opts) { return call(() => this.#n.quarantine(opt(opts?.force))); }

  // ----- on the libuv thread pool -----
  initAsync() { return callAsync(() => this.#n.initAsync()); }
  putAsync(tenant, tokenResponse) { return callAsync(() => this.#n.putAsync(tenant, json(tokenResponse))); }
  tokenAsync(tenant, opts) { return callAsync(() => this.#n.tokenAsync(tenant, minValid(opts))); }
  tokenInfoAsync(tenant, opts) { return callAsync(() => this.#n.tokenInfoAsync(tenant, minValid(opts))); }
  refreshAsync(tenant, opts) {
    return callAsync(() => this.#n.refreshAsync(tenant, str(opts?.rejected), str(opts?.rejectedSha256)));
  }
  listAsync() { return callAsync(() => this.#n.listAsync()); }
  deleteAsync(tenant) { return callAsync(() => this.#n.deleteAsync(tenant)); }
  attachmentAsync(tenant, name) { return callAsync(() => this.#n.attachmentAsync(tenant, String(name))); }
  setAttachmentAsync(tenant, name, value) {
    return callAsync(() => this.#n.setAttachmentAsync(tenant, String(name), attachmentValue(value)));
  }
  importFileAsync(file, opts) {
    return callAsync(() => this.#n.importFileAsync(String(file), str(opts?.tenant), opt(opts?.replace), opt(opts?.removeSource), str(opts?.kind), str(opts?.account)));
  }
  slotsAsync() { return callAsync(() => this.#n.slotsAsync()); }
  addSlotAsync(kind, opts) { return callAsync(() => this.#n.addSlotAsync(String(kind), opt(opts?.passphrase))); }
  removeSlotAsync(index, opts) {
    return callAsync(() => this.#n.removeSlotAsync(num(index), opt(opts?.allowVolatileOnly)));
  }
  importTokensAsync(src, opts) {
    return callAsync(() => this.#n.importTokensAsync(source(src), str(opts?.tenant), opt(opts?.replace), str(opts?.kind), str(opts?.account)));
  }
  quarantineAsync(opts) { return callAsync(() => this.#n.quarantineAsync(opt(opts?.force))); }

  // ----- login and logout -----
  /**
   * Log `tenant` in (device flow by default, or `flow: 'browser'`) and store the tokens as
   * `put` would; joins a login already in progress for `tenant`. `onPrompt` receives the
   * code or URL to show. Only asynchronous: the user takes minutes.
   */
  loginAsync(tenant, opts, onPrompt) {
    return callAsync(() => this.#n.loginAsync(tenant, { ...opts }, onPrompt ?? null));
  }
  logout(tenant, opts) { return call(() => this.#n.logout(tenant, opt(opts?.local))); }
  logoutAsync(tenant, opts) { return callAsync(() => this.#n.logoutAsync(tenant, opt(opts?.local))); }

  // --- generated by host/surface/tests/operations.rs from wit/store.wit: edit there ---
  pendingLogins() { return call(() => this.#n.pendingLogins()); }
  pendingLoginsAsync() { return callAsync(() => this.#n.pendingLoginsAsync()); }
  info() { return call(() => this.#n.info()); }
  infoAsync() { return callAsync(() => this.#n.infoAsync()); }
  rekey() { return call(() => this.#n.rekey()); }
  rekeyAsync() { return callAsync(() => this.#n.rekeyAsync()); }
  recover(opts) { return call(() => this.#n.recover(opt(opts?.force))); }
  recoverAsync(opts) { return callAsync(() => this.#n.recoverAsync(opt(opts?.force))); }
  // --- end of generated operations ---

  /** Release the store; later calls throw. Calls already running finish. */
  close() { this.#n.close(); }
  [Symbol.dispose]() { this.close(); }
}
