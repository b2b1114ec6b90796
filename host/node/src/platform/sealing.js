// credlock:store/sealing — data keys and the key slots that wrap them (FORMAT.md, "Key
// slots"): host/src/keys.rs in JS. AES-256-GCM is Node's crypto; argon2id is the native
// addon (the same `argon2` crate the Rust host uses), because it must be synchronous.
//
// Never: create a key because a source is missing. `unlock` reports which slots exist; only
// `create`, which the core calls under the exclusive store lock with no store file, makes a
// key, and `rekey`, which re-makes every slot of the store from the same sources or fails.
// Unwrapped keys are cached for the life of the keyring, and keyrings are shared by every
// store of the process opened with the same key sources, so a passphrase costs one argon2id
// derivation per process. Slots of kinds this host cannot open (`keyring`,
// `kernel-keyring`, ...) are skipped when unlocking and kept verbatim by the core; this host
// cannot make or re-make them.
import crypto from 'node:crypto';
import { native } from '../native.js';
import { createExclusive, readFile } from './files.js';

export const KEY_FILE_SLOT = 'key-file';
export const PASSPHRASE_SLOT = 'passphrase';
const SLOT_VERSION = 1;
const KEY_FILE_MAGIC = 'credlock-key-file-v1';
const KEY_FILE_SLOT_LEN = 1 + 16 + 12 + 48;
const PASSPHRASE_SLOT_LEN = 1 + 12 + 16 + 12 + 48;
const HEX = /^(?:[0-9a-fA-F]{2})*$/;

/** argon2id parameters written into new passphrase slots (keys.rs `KdfParams::default`). */
export const DEFAULT_KDF = Object.freeze({ memoryKiB: 64 * 1024, iterations: 3, parallelism: 1 });

const keyError = (tag, val) => ({ payload: val === undefined ? { tag } : { tag, val } });
const malformed = (why) => keyError('malformed-slot', why);
const unavailable = (why) => keyError('slot-unavailable', why);

/** Why this host cannot make a slot of `kind` (the payload of `slot-unavailable`). */
function noSource(kind) {
  const what = { keyring: 'OS keyring', 'kernel-keyring': 'kernel keyring' }[kind];
  return what ? `${kind}: this host has no ${what} support` : `${kind}: this host has no key source of this kind`;
}

/** The id of the key file a `key-file` slot was made with; null if the slot is malformed. */
function keyFileSlotId(data) {
  if (data.length !== KEY_FILE_SLOT_LEN || data[0] !== SLOT_VERSION) return null;
  return Buffer.from(data.subarray(1, 17));
}

/** Kinds whose slot is lost at reboot or idle expiry (core/src/platform.rs VOLATILE_SLOT_KINDS). */
export const VOLATILE_SLOT_KINDS = Object.freeze(['kernel-keyring']);
/** Where the Rust host keeps keyring slots' wrapping keys: entries `credlock/<id hex>`. */
const KEYRING_SERVICE = 'credlock';

/**
 * `{ backend, id }` of a `keyring` / `kernel-keyring` slot, or null if it is malformed:
 * version, backend (u8 length, ASCII), id (16), nonce (12), wrapped key (48)
 * (core/keyslots `keyring_slot`). Read for display only: this host cannot open them.
 */
function keyringSlotRef(data) {
  if (data.length < 2 || data[0] !== SLOT_VERSION) return null;
  const n = data[1];
  if (n < 1 || n > 32 || data.length !== 2 + n + 16 + 12 + 48) return null;
  const backend = Buffer.from(data.subarray(2, 2 + n));
  if (backend.some((b) => b > 0x7f)) return null;
  return { backend: backend.toString('ascii'), id: Buffer.from(data.subarray(2 + n, 18 + n)) };
}

/**
 * One line about a slot that says which source opens it and nothing secret: the key file's
 * id, the argon2id parameters, the keyring entry, or the size of a slot of a kind this host
 * does not know. The text of the Rust CLI's `slot list`; the Python host writes the same
 * (host/python/src/credlock/_keys.py `describe_slot`).
 */
export function describeSlot(kind, data) {
  if (kind === KEY_FILE_SLOT) {
    const id = keyFileSlotId(data);
    return id ? `key file ${id.toString('hex')}` : 'damaged key-file slot';
  }
  if (kind === PASSPHRASE_SLOT) {
    if (data.length !== PASSPHRASE_SLOT_LEN || data[0] !== SLOT_VERSION) return 'damaged passphrase slot';
    const d = Buffer.from(data.buffer, data.byteOffset, data.length);
    const m = d.readUInt32BE(1);
    const memory = m % 1024 === 0 ? `${m / 1024} MiB` : `${m} KiB`;
    return `argon2id m=${memory} t=${d.readUInt32BE(5)} p=${d.readUInt32BE(9)}`;
  }
  if (kind === 'keyring' || kind === 'kernel-keyring') {
    const r = keyringSlotRef(data);
    if (!r) return 'damaged keyring slot';
    const volatile = VOLATILE_SLOT_KINDS.includes(kind) ? ' (volatile: lost at reboot)' : '';
    return `${r.backend} entry ${KEYRING_SERVICE}/${r.id.toString('hex')}${volatile}`;
  }
  return `${data.length} bytes (a kind this credlock does not know; kept as is)`;
}

/** Bounds on what a slot may ask for (keys.rs `KdfParams::check`). */
function checkKdf(p) {
  const ok = p.memoryKiB >= 8 && p.memoryKiB <= 1024 * 1024
    && p.iterations >= 1 && p.iterations <= 64
    && p.parallelism >= 1 && p.parallelism <= 16;
  if (!ok) throw malformed('passphrase slot has out-of-range argon2id parameters');
}

function derive(passphrase, salt, p) {
  checkKdf(p);
  const pass = Buffer.from(passphrase, 'utf8');
  try {
    return native.argon2id(pass, Buffer.from(salt), p.memoryKiB, p.iterations, p.parallelism);
  } catch (e) {
    throw malformed(e?.message === 'argon2id failed' ? 'argon2id failed' : 'invalid argon2id parameters');
  } finally {
    pass.fill(0);
  }
}

function slotAad(kind, dataKeyId, params) {
  return Buffer.concat([Buffer.from(`credlock/slot/${kind}/v1`), dataKeyId, params]);
}

function gcmSeal(key, nonce, aad, plaintext) {
  const c = crypto.createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
  c.setAAD(aad);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

/** The plaintext, or null if authentication fails. */
function gcmOpen(key, nonce, aad, sealed) {
  if (sealed.length < 16) return null;
  try {
    const d = crypto.createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
    d.setAAD(aad);
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
  } catch {
    return null;
  }
}

function wrap(kek, aad, dataKey) {
  const nonce = crypto.randomBytes(12);
  return { nonce, ct: gcmSeal(kek, nonce, aad, dataKey) };
}

function unwrap(kek, aad, nonce, ct) {
  const pt = gcmOpen(kek, nonce, aad, ct);
  if (pt === null) return null;
  if (pt.length !== 32) {
    pt.fill(0);
    return null;
  }
  return pt;
}

const u8 = (b) => new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));

/** Whether two slot lists are the same kinds and bytes, in the same order. */
const sameSlots = (a, b) => a.length === b.length
  && a.every((s, i) => s.kind === b[i].kind && Buffer.compare(s.data, b[i].data) === 0);

/**
 * An unwrapped data key (keys.rs `DataKey`), with the slots of the header it came from (or
 * was made with). `key` may be raw bytes or the KeyObject of the same key.
 */
class DataKey {
  constructor(id, key, slots) {
    this.id = Buffer.from(id);
    this.key = key instanceof crypto.KeyObject ? key : crypto.createSecretKey(key);
    this.slots = slots.map((s) => ({ kind: s.kind, data: Buffer.from(s.data) }));
  }

  /**
   * The same key, as wrapped by `slots`: a cached key handed out again carries the header it
   * was just unlocked from, not the one it was first seen with.
   */
  withSlots(slots) {
    return new DataKey(this.id, this.key, slots);
  }
}

/**
 * Where the keyring finds keys.
 * @typedef {{ passphrase?: string, keyFile?: string, createKeyFile: boolean,
 *             kdf: { memoryKiB: number, iterations: number, parallelism: number } }} KeySources
 */

/** The process's key sources and the keys unwrapped so far (keys.rs `Keyring`). */
export class Keyring {
  #sources;
  #cache = new Map();
  #fileKey = null;
  // The slots (hex of their bytes) of each data key (hex id) that this keyring's own sources
  // opened or made. A cached key is used only while the header still holds one of them: once
  // such a slot is removed, opening fails as it would without the cache, in every Store of
  // the process that shares this keyring.
  #mine = new Map();

  /** @param {KeySources} sources */
  constructor(sources) {
    this.#sources = { ...sources, kdf: { ...(sources.kdf ?? DEFAULT_KDF) } };
  }

  get sources() {
    const { passphrase, ...rest } = this.#sources;
    return { ...rest, passphrase: passphrase === undefined ? undefined : '<set>' };
  }

  #readKeyFile(create) {
    if (this.#fileKey) return this.#fileKey;
    const p = this.#sources.keyFile;
    if (!p) return null;
    if (create) {
      const id = crypto.randomBytes(16);
      const key = crypto.randomBytes(32);
      const text = Buffer.from(`${KEY_FILE_MAGIC} ${id.toString('hex')} ${key.toString('hex')}\n`);
      key.fill(0);
      try {
        // Loses the race gracefully: if another process made the file first, read theirs.
        createExclusive(p, text);
      } catch (e) {
        throw keyError('io', fileIo(e));
      } finally {
        text.fill(0);
      }
    }
    let bytes;
    try {
      bytes = readFile(p, 4096);
    } catch (e) {
      throw keyError('io', fileIo(e));
    }
    if (bytes === null) return null;
    try {
      let text;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      } catch {
        throw keyError('wrong-key-file');
      }
      const parts = text.split(/\s+/).filter((s) => s.length > 0);
      if (parts.length !== 3 || parts[0] !== KEY_FILE_MAGIC
          || !HEX.test(parts[1]) || parts[1].length !== 32
          || !HEX.test(parts[2]) || parts[2].length !== 64) {
        throw keyError('wrong-key-file');
      }
      const raw = Buffer.from(parts[2], 'hex');
      this.#fileKey = { id: Buffer.from(parts[1], 'hex'), key: crypto.createSecretKey(raw) };
      raw.fill(0);
      return this.#fileKey;
    } finally {
      bytes.fill(0);
    }
  }

  #own(id, slots) {
    const k = Buffer.from(id).toString('hex');
    if (!this.#mine.has(k)) this.#mine.set(k, new Set());
    for (const s of slots) this.#mine.get(k).add(Buffer.from(s.data).toString('hex'));
  }

  #isMine(id, slots) {
    const mine = this.#mine.get(Buffer.from(id).toString('hex'));
    return !!mine && slots.some((s) => mine.has(Buffer.from(s.data).toString('hex')));
  }

  /**
   * The id of the key these slots wrap: the cached key unlocked from exactly this header.
   * `rekey` gets only the slots, and a slot's AAD binds the key id; the core always unlocks
   * (under the same store lock) just before it rekeys.
   */
  #oldKeyId(slots) {
    for (const key of this.#cache.values()) if (sameSlots(key.slots, slots)) return key.id;
    return null;
  }

  #keyFileSlot(fk, id, dataKey) {
    const { nonce, ct } = wrap(fk.key, slotAad(KEY_FILE_SLOT, id, fk.id), dataKey);
    return { kind: KEY_FILE_SLOT, data: Buffer.concat([Buffer.of(SLOT_VERSION), fk.id, nonce, ct]) };
  }

  /** A new passphrase slot: a new salt and nonce, this host's argon2id parameters. */
  #passphraseSlot(passphrase, id, dataKey) {
    const p = this.#sources.kdf;
    const salt = crypto.randomBytes(16);
    const params = Buffer.alloc(12);
    params.writeUInt32BE(p.memoryKiB, 0);
    params.writeUInt32BE(p.iterations, 4);
    params.writeUInt32BE(p.parallelism, 8);
    const kek = derive(passphrase, salt, p);
    const { nonce, ct } = wrap(kek, slotAad(PASSPHRASE_SLOT, id, Buffer.concat([params, salt])), dataKey);
    kek.fill(0);
    return { kind: PASSPHRASE_SLOT, data: Buffer.concat([Buffer.of(SLOT_VERSION), params, salt, nonce, ct]) };
  }

  /** A new data key with a slot for every configured source (keys.rs `create`). */
  create() {
    const s = this.#sources;
    const useKeyFile = s.createKeyFile && !!s.keyFile;
    if (s.passphrase === undefined && !useKeyFile) throw keyError('no-key-source');
    const id = crypto.randomBytes(16);
    const dataKey = crypto.randomBytes(32);
    try {
      const slots = [];
      if (useKeyFile) {
        const fk = this.#readKeyFile(true);
        if (!fk) throw keyError('no-key-source');
        slots.push(this.#keyFileSlot(fk, id, dataKey));
      }
      if (s.passphrase !== undefined) slots.push(this.#passphraseSlot(s.passphrase, id, dataKey));
      const key = new DataKey(id, dataKey, slots);
      this.#cache.set(id.toString('hex'), key);
      this.#own(id, slots);
      return key;
    } finally {
      dataKey.fill(0);
    }
  }

  /**
   * A new slot of `kind` wrapping `key` (keys.rs `add_slot`): the configured key file
   * (created if absent and the policy allows, as `create` would), or `passphrase`, a new one
   * the caller gave for this call.
   */
  addSlot(key, kind, passphrase) {
    let slot;
    const dataKey = key.key.export();
    try {
      if (kind === KEY_FILE_SLOT) {
        const p = this.#sources.keyFile;
        if (!p) throw unavailable('key-file: no key file is configured');
        const fk = this.#readKeyFile(this.#sources.createKeyFile);
        if (!fk) {
          throw unavailable(`key-file: ${p} does not exist, and a store opened with a passphrase creates a key file only when one is named explicitly`);
        }
        if (key.slots.some((s) => s.kind === KEY_FILE_SLOT && keyFileSlotId(s.data)?.equals(fk.id))) {
          throw unavailable('the store already has a key-file slot for this key file');
        }
        slot = this.#keyFileSlot(fk, key.id, dataKey);
        this.#own(key.id, [slot]);
      } else if (kind === PASSPHRASE_SLOT) {
        if (passphrase === undefined) throw unavailable('passphrase: no new passphrase was given');
        slot = this.#passphraseSlot(passphrase, key.id, dataKey);
      } else {
        throw unavailable(noSource(kind));
      }
    } finally {
      dataKey.fill(0);
    }
    return slot;
  }

  /**
   * A new data key (new id) wrapped by the same sources as `slots`, one new slot per old one,
   * same kinds, same order (keys.rs `rekey`). Every source is checked before anything is
   * made: a key-file slot only from the key file with its id, a passphrase slot only from a
   * passphrase that opens it (else `wrong-passphrase`); a slot that cannot be re-made is
   * `slot-unavailable`, never dropped.
   */
  rekey(slots) {
    const oldId = this.#oldKeyId(slots);
    let fk = null;
    for (const slot of slots) {
      if (slot.kind === KEY_FILE_SLOT) fk = this.#checkKeyFileSource(oldId, slot);
      else if (slot.kind === PASSPHRASE_SLOT) this.#checkPassphraseSource(oldId, slot);
      else throw unavailable(`${noSource(slot.kind)}; rekeying would drop this slot`);
    }
    const id = crypto.randomBytes(16);
    const dataKey = crypto.randomBytes(32);
    try {
      const fresh = slots.map((slot) => (slot.kind === KEY_FILE_SLOT
        ? this.#keyFileSlot(fk, id, dataKey)
        : this.#passphraseSlot(this.#sources.passphrase, id, dataKey)));
      const key = new DataKey(id, dataKey, fresh);
      this.#cache.set(id.toString('hex'), key);
      this.#own(id, fresh);
      return key;
    } finally {
      dataKey.fill(0);
    }
  }

  #checkKeyFileSource(oldId, slot) {
    const kid = keyFileSlotId(slot.data);
    if (!kid) throw malformed('key-file slot has an unknown layout');
    const p = this.#sources.keyFile;
    const fk = p ? this.#readKeyFile(false) : null;
    if (!fk) {
      throw unavailable(`key-file: the key file ${kid.toString('hex')} this slot was made with is not configured${p ? ` (${p} does not exist)` : ''}`);
    }
    if (!fk.id.equals(kid)) {
      throw unavailable(`key-file: the configured key file ${p} is ${fk.id.toString('hex')}, not the key file ${kid.toString('hex')} this slot was made with`);
    }
    if (oldId) this.#openKeyFileSlot(oldId, slot.data)?.fill(0); // wrong-key-file if it does not open
    return fk;
  }

  #checkPassphraseSource(oldId, slot) {
    if (this.#sources.passphrase === undefined) {
      throw unavailable('passphrase: no passphrase is configured to re-make this slot');
    }
    // The core unlocks before it rekeys; reaching this is a host/core mismatch.
    if (!oldId) throw unavailable("passphrase: this host has not opened the store's key");
    // A slot this keyring's passphrase already opened or made needs no second argon2id.
    if (this.#isMine(oldId, [slot])) return;
    this.#openPassphraseSlot(oldId, slot.data)?.fill(0); // wrong-passphrase if it does not open
  }

  /** Unwrap data key `keyId` from the first slot a configured source opens (keys.rs `unlock`). */
  unlock(keyId, slots) {
    if (keyId.length !== 16) throw malformed('key id is not 16 bytes');
    const id = Buffer.from(keyId);
    let cached = this.#cache.get(id.toString('hex'));
    if (cached && this.#isMine(id, slots)) {
      if (!sameSlots(cached.slots, slots)) {
        cached = cached.withSlots(slots);
        this.#cache.set(id.toString('hex'), cached);
      }
      return cached;
    }
    // Remember the most specific failure to report if no slot opens.
    let failure = null;
    for (const slot of slots) {
      let opened = null;
      try {
        if (slot.kind === KEY_FILE_SLOT) opened = this.#openKeyFileSlot(id, slot.data);
        else if (slot.kind === PASSPHRASE_SLOT) opened = this.#openPassphraseSlot(id, slot.data);
      } catch (e) {
        if (!(e && typeof e === 'object' && 'payload' in e)) throw e;
        failure ??= e;
        continue;
      }
      if (opened) {
        const key = new DataKey(id, opened, slots);
        opened.fill(0);
        this.#cache.set(id.toString('hex'), key);
        this.#own(id, [slot]);
        return key;
      }
    }
    throw failure ?? keyError('no-matching-slot', slots.map((s) => s.kind));
  }

  #openKeyFileSlot(dataKeyId, data) {
    if (data.length !== 1 + 16 + 12 + 48 || data[0] !== SLOT_VERSION) {
      throw malformed('key-file slot has an unknown layout');
    }
    const fk = this.#readKeyFile(false);
    if (!fk) return null;
    const d = Buffer.from(data);
    const kekId = d.subarray(1, 17);
    if (!kekId.equals(fk.id)) throw keyError('wrong-key-file');
    const key = unwrap(fk.key, slotAad(KEY_FILE_SLOT, dataKeyId, kekId), d.subarray(17, 29), d.subarray(29));
    if (!key) throw keyError('wrong-key-file');
    return key;
  }

  #openPassphraseSlot(dataKeyId, data) {
    if (data.length !== 1 + 12 + 16 + 12 + 48 || data[0] !== SLOT_VERSION) {
      throw malformed('passphrase slot has an unknown layout');
    }
    const pass = this.#sources.passphrase;
    if (pass === undefined) return null;
    const d = Buffer.from(data);
    const p = { memoryKiB: d.readUInt32BE(1), iterations: d.readUInt32BE(5), parallelism: d.readUInt32BE(9) };
    const params = d.subarray(1, 13);
    const salt = d.subarray(13, 29);
    const kek = derive(pass, salt, p);
    const key = unwrap(kek, slotAad(PASSPHRASE_SLOT, dataKeyId, Buffer.concat([params, salt])), d.subarray(29, 41), d.subarray(41));
    kek.fill(0);
    if (!key) throw keyError('wrong-passphrase');
    return key;
  }
}

/** A `file-error` thrown by files.js, as the `io-error` of a key error (keys.rs `file_io`). */
function fileIo(e) {
  const fe = e?.payload;
  if (!fe) throw e;
  if (fe.tag === 'io') return fe.val;
  return { tag: 'other', val: `key file too large (${fe.val} bytes)` };
}

/**
 * The `sealing` import over a keyring. `slotSources.passphrase` is the new passphrase for an
 * `add-slot` of kind `passphrase`: set by `Store.addSlot` for that one call, per Store (the
 * keyring is shared by every Store of the process with the same sources).
 */
export function makeSealing(keyring, slotSources = {}) {
  class SealingKey {
    #k;
    constructor(dataKey) {
      this.#k = dataKey;
    }
    keyId() {
      return u8(this.#k.id);
    }
    slots() {
      return this.#k.slots.map((s) => ({ kind: s.kind, data: u8(s.data) }));
    }
    seal(nonce, aad, plaintext) {
      if (nonce.length !== 12) throw { payload: { tag: 'bad-nonce' } };
      return gcmSeal(this.#k.key, nonce, aad, plaintext);
    }
    open(nonce, aad, ciphertext) {
      if (nonce.length !== 12) throw { payload: { tag: 'bad-nonce' } };
      const pt = gcmOpen(this.#k.key, nonce, aad, ciphertext);
      if (pt === null) throw { payload: { tag: 'authentication-failed' } };
      return pt;
    }
    addSlot(kind) {
      const s = keyring.addSlot(this.#k, kind, slotSources.passphrase);
      return { kind: s.kind, data: u8(s.data) };
    }
  }
  return {
    SealingKey,
    unlock: (keyId, slots) => new SealingKey(keyring.unlock(keyId, slots)),
    create: () => new SealingKey(keyring.create()),
    rekey: (slots) => new SealingKey(keyring.rekey(slots)),
  };
}
