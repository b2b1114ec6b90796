"""Data keys and the key slots that wrap them (FORMAT.md, "Key slots"; host/src/keys.rs).

A store is sealed under a random 256-bit *data key*. The header carries that key wrapped
(AES-256-GCM) by each configured key source: a key file, a passphrase (argon2id). Keys live
only here, in the host; the component holds a handle. Unwrapped keys are cached for the life
of the Keyring, so a passphrase costs one argon2id derivation.

Never: create a key because a source is missing. `unlock` reports which slots exist; only
`create`, which the core calls under the exclusive store lock with no store file, makes one,
and `rekey`, which re-makes every slot of the store from the same sources or fails.
Slots of kinds this host cannot open (`keyring`, `kernel-keyring`, ...) are skipped when
unlocking and kept verbatim by the core; this host cannot make or re-make them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import _files
from ._ptypes import FileError, IoError, KeyError_, SealError

KEY_FILE_SLOT = "key-file"
PASSPHRASE_SLOT = "passphrase"
SLOT_VERSION = 1
KEY_FILE_MAGIC = "credlock-key-file-v1"
_KEY_FILE_SLOT_LEN = 1 + 16 + 12 + 48
_PASSPHRASE_SLOT_LEN = 1 + 12 + 16 + 12 + 48
_KEY_FILE_MAX = 4096


@dataclass(frozen=True)
class KdfParams:
    """argon2id parameters written into new passphrase slots (the Rust host's defaults:
    64 MiB, 3 iterations, 1 lane)."""

    m_cost_kib: int = 64 * 1024
    t_cost: int = 3
    p_cost: int = 1

    def check(self) -> None:
        """Bounds on what a slot may ask for: a tampered header must not make us allocate
        gigabytes or spin for minutes before the (failing) authentication."""
        ok = (
            8 <= self.m_cost_kib <= 1024 * 1024
            and 1 <= self.t_cost <= 64
            and 1 <= self.p_cost <= 16
        )
        if not ok:
            raise KeyError_(
                "malformed-slot", "passphrase slot has out-of-range argon2id parameters"
            )

    def encode(self) -> bytes:
        return struct.pack(">III", self.m_cost_kib, self.t_cost, self.p_cost)


@dataclass
class KeySources:
    """Where the host may find keys."""

    passphrase: Optional[bytes] = None
    #: Tried when opening a store, if the file exists.
    key_file: Optional[Path] = None
    #: Whether a new store gets a key-file slot (creating the file if needed).
    create_key_file: bool = True
    kdf: KdfParams = field(default_factory=KdfParams)

    def __repr__(self) -> str:  # never show the passphrase
        return (
            f"KeySources(passphrase={'<set>' if self.passphrase else None}, "
            f"key_file={self.key_file!r}, create_key_file={self.create_key_file})"
        )


@dataclass(frozen=True)
class KeySlot:
    kind: str
    data: bytes


class DataKey:
    """An unwrapped data key, with the slots of the header it came from (or was made with).

    The key bytes are kept (never in a repr) because `add-slot` wraps them again."""

    __slots__ = ("id", "_key", "_cipher", "slots")

    def __init__(
        self, key_id: bytes, key: bytes, slots: List[KeySlot], cipher: Optional[AESGCM] = None
    ) -> None:
        self.id = key_id
        self._key = bytes(key)
        self._cipher = cipher if cipher is not None else AESGCM(key)
        self.slots = list(slots)

    def __repr__(self) -> str:
        return f"DataKey(id={self.id.hex()})"

    def with_slots(self, slots: List[KeySlot]) -> "DataKey":
        """The same key, as wrapped by `slots`: a cached key handed out again carries the
        header it was just unlocked from, not the one it was first seen with."""
        return DataKey(self.id, self._key, slots, self._cipher)

    def seal(self, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        if len(nonce) != 12:
            raise SealError("bad-nonce")
        return self._cipher.encrypt(nonce, plaintext, aad)

    def open(self, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        if len(nonce) != 12:
            raise SealError("bad-nonce")
        try:
            return self._cipher.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise SealError("authentication-failed") from None


@dataclass(frozen=True)
class _FileKey:
    id: bytes
    key: bytes = field(repr=False)


def _wrap(kek: bytes, aad: bytes, data_key: bytes) -> Tuple[bytes, bytes]:
    nonce = os.urandom(12)
    return nonce, AESGCM(kek).encrypt(nonce, data_key, aad)


def _unwrap(kek: bytes, aad: bytes, nonce: bytes, ct: bytes) -> Optional[bytes]:
    try:
        pt = AESGCM(kek).decrypt(nonce, ct, aad)
    except InvalidTag:
        return None
    return pt if len(pt) == 32 else None


def slot_aad(kind: str, data_key_id: bytes, params: bytes) -> bytes:
    return f"credlock/slot/{kind}/v1".encode() + data_key_id + params


def derive(passphrase: bytes, salt: bytes, p: KdfParams) -> bytes:
    """KEK = argon2id v1.3 (passphrase, salt, parameters), 32 bytes."""
    p.check()
    if p.m_cost_kib < 8 * p.p_cost:
        # argon2 needs 8 KiB per lane; the Rust host's Params::new refuses this too.
        raise KeyError_("malformed-slot", "invalid argon2id parameters")
    from argon2.exceptions import HashingError  # imported on first use (passphrase stores)
    from argon2.low_level import Type, hash_secret_raw

    try:
        return hash_secret_raw(
            secret=passphrase,
            salt=salt,
            time_cost=p.t_cost,
            memory_cost=p.m_cost_kib,
            parallelism=p.p_cost,
            hash_len=32,
            type=Type.ID,
            version=19,
        )
    except HashingError:
        raise KeyError_("malformed-slot", "argon2id failed") from None


def _file_io(e: FileError) -> IoError:
    if e.io is not None:
        return e.io
    return IoError("other", f"key file too large ({e.too_large} bytes)")


def parse_key_file(raw: bytes) -> _FileKey:
    """`credlock-key-file-v1 <32 hex: id> <64 hex: KEK>`; anything else is the wrong key file."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyError_("wrong-key-file") from None
    parts = text.split()
    if len(parts) != 3 or parts[0] != KEY_FILE_MAGIC:
        raise KeyError_("wrong-key-file")
    try:
        key_id = bytes.fromhex(parts[1])
        key = bytes.fromhex(parts[2])
    except ValueError:
        raise KeyError_("wrong-key-file") from None
    if len(key_id) != 16 or len(key) != 32:
        raise KeyError_("wrong-key-file")
    return _FileKey(key_id, key)


def key_file_text(key_id: bytes, key: bytes) -> bytes:
    return f"{KEY_FILE_MAGIC} {key_id.hex()} {key.hex()}\n".encode()


def key_file_slot_id(data: bytes) -> Optional[bytes]:
    """The id of the key file a `key-file` slot was made with; None if the slot is malformed."""
    if len(data) != _KEY_FILE_SLOT_LEN or data[0] != SLOT_VERSION:
        return None
    return bytes(data[1:17])


#: Kinds whose slot is lost at reboot or idle expiry (core/src/platform.rs,
#: VOLATILE_SLOT_KINDS); every other kind counts as durable.
VOLATILE_SLOT_KINDS = ("kernel-keyring",)
#: Where the Rust host keeps keyring slots' wrapping keys: entries `credlock/<id hex>`.
_KEYRING_SERVICE = "credlock"


def _keyring_slot_ref(data: bytes) -> Optional[Tuple[str, bytes]]:
    """(backend, wrapping-key id) of a `keyring` / `kernel-keyring` slot, or None if it is
    malformed: version, backend (u8 length, ASCII), id (16), nonce (12), wrapped key (48)
    (core/keyslots, `keyring_slot`). Read for display only: this host cannot open them."""
    if len(data) < 2 or data[0] != SLOT_VERSION:
        return None
    n = data[1]
    if not 1 <= n <= 32 or len(data) != 2 + n + 16 + 12 + 48 or not data[2:2 + n].isascii():
        return None
    return data[2:2 + n].decode("ascii"), bytes(data[2 + n:18 + n])


def describe_slot(kind: str, data: bytes) -> str:
    """One line about a slot that says which source opens it and nothing secret: the key
    file's id, the argon2id parameters, the keyring entry, or the size of a slot of a kind
    this host does not know. The text of the Rust CLI's `slot list`; the Node host writes the
    same (host/node/src/platform/sealing.js)."""
    if kind == KEY_FILE_SLOT:
        kid = key_file_slot_id(data)
        return f"key file {kid.hex()}" if kid is not None else "damaged key-file slot"
    if kind == PASSPHRASE_SLOT:
        if len(data) != _PASSPHRASE_SLOT_LEN or data[0] != SLOT_VERSION:
            return "damaged passphrase slot"
        m, t, p = struct.unpack(">III", data[1:13])
        memory = f"{m // 1024} MiB" if m % 1024 == 0 else f"{m} KiB"
        return f"argon2id m={memory} t={t} p={p}"
    if kind in ("keyring", "kernel-keyring"):
        ref = _keyring_slot_ref(data)
        if ref is None:
            return "damaged keyring slot"
        volatile = " (volatile: lost at reboot)" if kind in VOLATILE_SLOT_KINDS else ""
        return f"{ref[0]} entry {_KEYRING_SERVICE}/{ref[1].hex()}{volatile}"
    return f"{len(data)} bytes (a kind this credlock does not know; kept as is)"


def _no_source(kind: str) -> str:
    """Why this host cannot make a slot of `kind` (the payload of `slot-unavailable`)."""
    what = {"keyring": "OS keyring", "kernel-keyring": "kernel keyring"}.get(kind)
    if what is not None:
        return f"{kind}: this host has no {what} support"
    return f"{kind}: this host has no key source of this kind"


# Unwrapped data keys shared by every Keyring of the process, so that opening a second Store
# on a passphrase store costs no second argon2id derivation. An entry is keyed by everything
# the unwrap depends on: the data key id, the slot's exact bytes, and an HMAC (under a random
# per-process key) of the secret that opened it. Any other passphrase, key file or slot misses
# and goes through the full slot logic, so errors are exactly those without the cache.
_PROCESS_SECRET = os.urandom(32)
_PROCESS_CACHE: Dict[Tuple[bytes, bytes, bytes], bytes] = {}
_PROCESS_CACHE_LOCK = threading.Lock()


def _fingerprint(kind: str, secret: bytes) -> bytes:
    return hmac.new(_PROCESS_SECRET, kind.encode() + b"\0" + secret, hashlib.sha256).digest()


def _cached(key_id: bytes, slot_data: bytes, fp: bytes) -> Optional[bytes]:
    with _PROCESS_CACHE_LOCK:
        return _PROCESS_CACHE.get((key_id, bytes(slot_data), fp))


def _cache(key_id: bytes, slot_data: bytes, fp: bytes, key: bytes) -> None:
    with _PROCESS_CACHE_LOCK:
        _PROCESS_CACHE[(key_id, bytes(slot_data), fp)] = key


class Keyring:
    """The process's key sources and the keys unwrapped so far. Thread-safe."""

    def __init__(self, sources: KeySources) -> None:
        self.sources = sources
        self._cache: Dict[bytes, DataKey] = {}
        self._file_key: Optional[_FileKey] = None
        # The slots (their bytes) of each data key that this keyring's own sources opened or
        # made. A cached key is used only while the header still holds one of them: once
        # such a slot is removed, opening fails as it would without the cache.
        self._mine: Dict[bytes, Set[bytes]] = {}
        self._lock = threading.RLock()

    def _own(self, key_id: bytes, slots: List[KeySlot]) -> None:
        self._mine.setdefault(key_id, set()).update(bytes(s.data) for s in slots)

    def _old_key_id(self, slots: List[KeySlot]) -> Optional[bytes]:
        """The id of the key these slots wrap: the cached key unlocked from exactly this
        header. `rekey` gets only the slots, and a slot's AAD binds the key id; the core always
        unlocks (under the same store lock) just before it rekeys."""
        return next((kid for kid, k in self._cache.items() if k.slots == slots), None)

    def _read_key_file(self, create: bool) -> Optional[_FileKey]:
        if self._file_key is not None:
            return self._file_key
        path = self.sources.key_file
        if path is None:
            return None
        if create:
            # Loses the race gracefully: if another process made the file first, read theirs.
            text = key_file_text(os.urandom(16), os.urandom(32))
            try:
                _files.create_exclusive(path, text)
            except FileError as e:
                raise KeyError_("io", _file_io(e)) from None
        try:
            raw = _files.read(path, _KEY_FILE_MAX)
        except FileError as e:
            raise KeyError_("io", _file_io(e)) from None
        if raw is None:
            return None
        fk = parse_key_file(raw)
        self._file_key = fk
        return fk

    def _key_file_slot(self, fk: _FileKey, key_id: bytes, data_key: bytes) -> KeySlot:
        nonce, ct = _wrap(fk.key, slot_aad(KEY_FILE_SLOT, key_id, fk.id), data_key)
        return KeySlot(KEY_FILE_SLOT, bytes([SLOT_VERSION]) + fk.id + nonce + ct)

    def _passphrase_slot(self, passphrase: bytes, key_id: bytes, data_key: bytes) -> KeySlot:
        """A new passphrase slot: a new salt and nonce, this host's argon2id parameters."""
        p = self.sources.kdf
        salt = os.urandom(16)
        params = p.encode()
        kek = derive(passphrase, salt, p)
        nonce, ct = _wrap(kek, slot_aad(PASSPHRASE_SLOT, key_id, params + salt), data_key)
        return KeySlot(PASSPHRASE_SLOT, bytes([SLOT_VERSION]) + params + salt + nonce + ct)

    def create(self) -> DataKey:
        """A new data key with a slot for every configured source."""
        with self._lock:
            s = self.sources
            use_key_file = s.create_key_file and s.key_file is not None
            if s.passphrase is None and not use_key_file:
                raise KeyError_("no-key-source")
            key_id = os.urandom(16)
            data_key = os.urandom(32)
            slots: List[KeySlot] = []
            fk: Optional[_FileKey] = None
            if use_key_file:
                fk = self._read_key_file(create=True)
                if fk is None:
                    raise KeyError_("no-key-source")
                slots.append(self._key_file_slot(fk, key_id, data_key))
            if s.passphrase is not None:
                slots.append(self._passphrase_slot(s.passphrase, key_id, data_key))
            key = DataKey(key_id, data_key, slots)
            self._cache[key_id] = key
            self._own(key_id, slots)
            for slot in slots:
                if slot.kind == KEY_FILE_SLOT and fk is not None:
                    _cache(key_id, slot.data, _fingerprint(KEY_FILE_SLOT, fk.id + fk.key), data_key)
                elif slot.kind == PASSPHRASE_SLOT and s.passphrase is not None:
                    _cache(key_id, slot.data, _fingerprint(PASSPHRASE_SLOT, s.passphrase), data_key)
            return key

    def unlock(self, key_id: bytes, slots: List[KeySlot]) -> DataKey:
        """Unwrap data key `key_id` from the first slot a configured source opens."""
        with self._lock:
            if len(key_id) != 16:
                raise KeyError_("malformed-slot", "key id is not 16 bytes")
            key_id = bytes(key_id)
            cached = self._cache.get(key_id)
            mine = self._mine.get(key_id, set())
            if cached is not None and any(bytes(s.data) in mine for s in slots):
                if cached.slots != slots:
                    cached = self._cache[key_id] = cached.with_slots(slots)
                return cached
            # Remember the most specific failure to report if no slot opens.
            failure: Optional[KeyError_] = None
            for slot in slots:
                try:
                    if slot.kind == KEY_FILE_SLOT:
                        opened = self._open_key_file_slot(key_id, slot.data)
                    elif slot.kind == PASSPHRASE_SLOT:
                        opened = self._open_passphrase_slot(key_id, slot.data)
                    else:
                        opened = None  # unknown kinds are kept verbatim and skipped
                except KeyError_ as e:
                    if failure is None:
                        failure = e
                    continue
                if opened is not None:
                    key = DataKey(key_id, opened, slots)
                    self._cache[key_id] = key
                    self._own(key_id, [slot])
                    return key
            if failure is not None:
                raise failure
            raise KeyError_("no-matching-slot", [s.kind for s in slots])

    def add_slot(self, key: DataKey, kind: str, passphrase: Optional[bytes]) -> KeySlot:
        """A new slot of `kind` wrapping `key`: the configured key file (created if absent
        and the policy allows, as `create` would), or `passphrase`, a new one the caller gave
        for this call. Not added to the process cache: a later open derives it for real."""
        with self._lock:
            if kind == KEY_FILE_SLOT:
                path = self.sources.key_file
                if path is None:
                    raise KeyError_("slot-unavailable", "key-file: no key file is configured")
                fk = self._read_key_file(create=self.sources.create_key_file)
                if fk is None:
                    raise KeyError_(
                        "slot-unavailable",
                        f"key-file: {path} does not exist, and a store opened with a passphrase "
                        "creates a key file only when one is named explicitly",
                    )
                if any(
                    s.kind == KEY_FILE_SLOT and key_file_slot_id(s.data) == fk.id
                    for s in key.slots
                ):
                    raise KeyError_(
                        "slot-unavailable", "the store already has a key-file slot for this key file"
                    )
                slot = self._key_file_slot(fk, key.id, key._key)
                self._own(key.id, [slot])
            elif kind == PASSPHRASE_SLOT:
                if passphrase is None:
                    raise KeyError_("slot-unavailable", "passphrase: no new passphrase was given")
                slot = self._passphrase_slot(passphrase, key.id, key._key)
            else:
                raise KeyError_("slot-unavailable", _no_source(kind))
            return slot

    def rekey(self, slots: List[KeySlot]) -> DataKey:
        """A new data key (new id) wrapped by the same sources as `slots`, one new slot per
        old one, same kinds, same order. Every source is checked before anything is made:
        a key-file slot only from the key file with its id, a passphrase slot only from a
        passphrase that opens it (else `wrong-passphrase`); any slot that cannot be re-made is
        `slot-unavailable`, never dropped."""
        with self._lock:
            old_id = self._old_key_id(slots)
            fk: Optional[_FileKey] = None
            for slot in slots:
                if slot.kind == KEY_FILE_SLOT:
                    fk = self._check_key_file_source(old_id, slot)
                elif slot.kind == PASSPHRASE_SLOT:
                    self._check_passphrase_source(old_id, slot)
                else:
                    raise KeyError_(
                        "slot-unavailable", f"{_no_source(slot.kind)}; rekeying would drop this slot"
                    )
            key_id = os.urandom(16)
            data_key = os.urandom(32)
            new: List[KeySlot] = []
            for slot in slots:
                if slot.kind == KEY_FILE_SLOT:
                    assert fk is not None  # checked above
                    new.append(self._key_file_slot(fk, key_id, data_key))
                else:
                    assert self.sources.passphrase is not None  # checked above
                    new.append(self._passphrase_slot(self.sources.passphrase, key_id, data_key))
            key = DataKey(key_id, data_key, new)
            self._cache[key_id] = key
            self._own(key_id, new)
            return key

    def _check_key_file_source(self, old_id: Optional[bytes], slot: KeySlot) -> _FileKey:
        kid = key_file_slot_id(slot.data)
        if kid is None:
            raise KeyError_("malformed-slot", "key-file slot has an unknown layout")
        path = self.sources.key_file
        fk = self._read_key_file(create=False) if path is not None else None
        if fk is None:
            where = f" ({path} does not exist)" if path is not None else ""
            raise KeyError_(
                "slot-unavailable",
                f"key-file: the key file {kid.hex()} this slot was made with is not configured{where}",
            )
        if fk.id != kid:
            raise KeyError_(
                "slot-unavailable",
                f"key-file: the configured key file {path} is {fk.id.hex()}, not the key file "
                f"{kid.hex()} this slot was made with",
            )
        if old_id is not None:
            self._open_key_file_slot(old_id, slot.data)  # wrong-key-file if it does not open
        return fk

    def _check_passphrase_source(self, old_id: Optional[bytes], slot: KeySlot) -> None:
        if self.sources.passphrase is None:
            raise KeyError_(
                "slot-unavailable", "passphrase: no passphrase is configured to re-make this slot"
            )
        if old_id is None:
            # The core unlocks before it rekeys; reaching this is a host/core mismatch.
            raise KeyError_(
                "slot-unavailable", "passphrase: this host has not opened the store's key"
            )
        self._open_passphrase_slot(old_id, slot.data)  # wrong-passphrase if it does not open

    def _open_key_file_slot(self, data_key_id: bytes, data: bytes) -> Optional[bytes]:
        if len(data) != _KEY_FILE_SLOT_LEN or data[0] != SLOT_VERSION:
            raise KeyError_("malformed-slot", "key-file slot has an unknown layout")
        fk = self._read_key_file(create=False)
        if fk is None:
            return None
        kek_id, nonce, ct = data[1:17], data[17:29], data[29:]
        if kek_id != fk.id:
            raise KeyError_("wrong-key-file")
        fp = _fingerprint(KEY_FILE_SLOT, fk.id + fk.key)
        key = _cached(data_key_id, data, fp)
        if key is not None:
            return key
        key = _unwrap(fk.key, slot_aad(KEY_FILE_SLOT, data_key_id, kek_id), nonce, ct)
        if key is None:
            raise KeyError_("wrong-key-file")
        _cache(data_key_id, data, fp, key)
        return key

    def _open_passphrase_slot(self, data_key_id: bytes, data: bytes) -> Optional[bytes]:
        if len(data) != _PASSPHRASE_SLOT_LEN or data[0] != SLOT_VERSION:
            raise KeyError_("malformed-slot", "passphrase slot has an unknown layout")
        passphrase = self.sources.passphrase
        if passphrase is None:
            return None
        m, t, p = struct.unpack(">III", data[1:13])
        params, salt, nonce, ct = data[1:13], data[13:29], data[29:41], data[41:]
        kdf = KdfParams(m, t, p)
        kdf.check()
        fp = _fingerprint(PASSPHRASE_SLOT, passphrase)
        key = _cached(data_key_id, data, fp)
        if key is not None:
            return key
        kek = derive(passphrase, salt, kdf)
        key = _unwrap(kek, slot_aad(PASSPHRASE_SLOT, data_key_id, params + salt), nonce, ct)
        if key is None:
            raise KeyError_("wrong-passphrase")
        _cache(data_key_id, data, fp, key)
        return key
