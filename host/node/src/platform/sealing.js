// credlock:store/sealing — data keys and the key slots that wrap them (FORMAT.md, "Key
// slots"): host/src/keys.rs in JS. AES-256-GCM is Node's crypto; argon2id is the native
// addon (the same `argon2` crate the Rust host uses), because it must be synchronous.
//
// Never: create a key because a source is missing. `unlock` reports which slots exist; only
// `create`, which the core calls under the exclusive store lock with no store file, makes a
// key. Unwrapped keys are cached for the life of the keyring, and keyrings are shared by
// every store of the process opened with the same key sources, so a passphrase costs one
// argon2id derivation per process.
import crypto from 'node:crypto';
import { native } from '../native.js';
import { createExclusive, readFile } from './files.js';

export const KEY_FILE_SLOT = 'key-file';
export const PASSPHRASE_SLOT = 'passphrase';
const SLOT_VERSION = 1;
const KEY_FILE_MAGIC = 'credlock-key-file-v1';
const HEX = /^(?:[0-9a-fA-F]{2})*$/;

/** argon2id parameters written into new passphrase slots (keys.rs `KdfParams::default`). */
export const DEFAULT_KDF = Object.freeze({ memoryKiB: 64 * 1024, iterations: 3, parallelism: 1 });

const keyError = (tag, val) => ({ payload: val === undefined ? { tag } : { tag, val } });
const malformed = (why) => keyError('malformed-slot', why);

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

/** An unwrapped data key (keys.rs `DataKey`). */
class DataKey {
  constructor(id, key, slots) {
    this.id = Buffer.from(id);
    this.key = crypto.createSecretKey(key);
    this.slots = slots.map((s) => ({ kind: s.kind, data: Buffer.from(s.data) }));
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
        const { nonce, ct } = wrap(fk.key, slotAad(KEY_FILE_SLOT, id, fk.id), dataKey);
        slots.push({ kind: KEY_FILE_SLOT, data: Buffer.concat([Buffer.of(SLOT_VERSION), fk.id, nonce, ct]) });
      }
      if (s.passphrase !== undefined) {
        const p = s.kdf;
        const salt = crypto.randomBytes(16);
        const params = Buffer.alloc(12);
        params.writeUInt32BE(p.memoryKiB, 0);
        params.writeUInt32BE(p.iterations, 4);
        params.writeUInt32BE(p.parallelism, 8);
        const kek = derive(s.passphrase, salt, p);
        const { nonce, ct } = wrap(kek, slotAad(PASSPHRASE_SLOT, id, Buffer.concat([params, salt])), dataKey);
        kek.fill(0);
        slots.push({ kind: PASSPHRASE_SLOT, data: Buffer.concat([Buffer.of(SLOT_VERSION), params, salt, nonce, ct]) });
      }
      const key = new DataKey(id, dataKey, slots);
      this.#cache.set(id.toString('hex'), key);
      return key;
    } finally {
      dataKey.fill(0);
    }
  }

  /** Unwrap data key `keyId` from the first slot a configured source opens (keys.rs `unlock`). */
  unlock(keyId, slots) {
    if (keyId.length !== 16) throw malformed('key id is not 16 bytes');
    const id = Buffer.from(keyId);
    const cached = this.#cache.get(id.toString('hex'));
    if (cached) return cached;
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

/** The `sealing` import over a keyring. */
export function makeSealing(keyring) {
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
  }
  return {
    SealingKey,
    unlock: (keyId, slots) => new SealingKey(keyring.unlock(keyId, slots)),
    create: () => new SealingKey(keyring.create()),
  };
}
