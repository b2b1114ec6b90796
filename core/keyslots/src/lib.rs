//! The key-slot formats of FORMAT.md ("Key slots"), implemented once for every Rust host:
//! the native wasmtime host and the WASI-only platform. Pure functions over bytes: the
//! caller supplies randomness and does all I/O.
#![forbid(unsafe_code)]

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

pub const KEY_FILE_SLOT: &str = "key-file";
pub const PASSPHRASE_SLOT: &str = "passphrase";
pub const SLOT_VERSION: u8 = 1;
pub const KEY_FILE_MAGIC: &str = "credlock-key-file-v1";
const KEY_FILE_SLOT_LEN: usize = 1 + 16 + 12 + 48;
const PASSPHRASE_SLOT_LEN: usize = 1 + 12 + 16 + 12 + 48;

/// argon2id parameters of a passphrase slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// OWASP's argon2id recommendation (m=19 MiB, t=2) raised to 64 MiB, t=3: ~0.1-0.3 s.
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotError {
    /// The slot's bytes do not follow the format (detail).
    Malformed(&'static str),
    /// The key or passphrase does not open this slot.
    WrongKey,
}

impl KdfParams {
    /// Bounds on what a slot may ask for: a tampered header must not make us allocate
    /// gigabytes or spin for minutes before the (failing) authentication.
    pub fn check(&self) -> Result<(), SlotError> {
        let ok = (8..=1024 * 1024).contains(&self.m_cost_kib)
            && (1..=64).contains(&self.t_cost)
            && (1..=16).contains(&self.p_cost);
        if ok {
            Ok(())
        } else {
            Err(SlotError::Malformed(
                "passphrase slot has out-of-range argon2id parameters",
            ))
        }
    }

    fn bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.m_cost_kib.to_be_bytes());
        b[4..8].copy_from_slice(&self.t_cost.to_be_bytes());
        b[8..].copy_from_slice(&self.p_cost.to_be_bytes());
        b
    }
}

fn aad(kind: &str, data_key_id: &[u8; 16], params: &[u8]) -> Vec<u8> {
    let mut aad = format!("credlock/slot/{kind}/v1").into_bytes();
    aad.extend_from_slice(data_key_id);
    aad.extend_from_slice(params);
    aad
}

fn wrap(kek: &[u8; 32], nonce: &[u8; 12], aad: &[u8], data_key: &[u8; 32]) -> Vec<u8> {
    // Encryption with a 32-byte key and a 12-byte nonce cannot fail.
    Aes256Gcm::new(kek.into())
        .encrypt(Nonce::from_slice(nonce), Payload { msg: data_key, aad })
        .expect("AES-GCM encrypt")
}

fn unwrap(
    kek: &[u8; 32],
    nonce: &[u8],
    aad: &[u8],
    ct: &[u8],
) -> Result<Zeroizing<[u8; 32]>, SlotError> {
    let pt = Zeroizing::new(
        Aes256Gcm::new(kek.into())
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| SlotError::WrongKey)?,
    );
    let key: [u8; 32] = pt
        .as_slice()
        .try_into()
        .map_err(|_| SlotError::Malformed("wrapped key is not 32 bytes"))?;
    Ok(Zeroizing::new(key))
}

/// argon2id v1.3, 32 bytes.
pub fn derive(
    passphrase: &str,
    salt: &[u8],
    p: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, SlotError> {
    p.check()?;
    let params = argon2::Params::new(p.m_cost_kib, p.t_cost, p.p_cost, Some(32))
        .map_err(|_| SlotError::Malformed("invalid argon2id parameters"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, out.as_mut())
        .map_err(|_| SlotError::Malformed("argon2id failed"))?;
    Ok(out)
}

/// A key file's wrapping key.
pub struct FileKey {
    pub id: [u8; 16],
    pub key: Zeroizing<[u8; 32]>,
}

/// The key file's one line of text.
pub fn format_key_file(id: &[u8; 16], key: &[u8; 32]) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "{KEY_FILE_MAGIC} {} {}\n",
        hex::encode(id),
        hex::encode(key)
    ))
}

pub fn parse_key_file(bytes: &[u8]) -> Option<FileKey> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut parts = text.split_whitespace();
    let (Some(KEY_FILE_MAGIC), Some(id), Some(key), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let id: [u8; 16] = hex::decode(id).ok()?.try_into().ok()?;
    let key = Zeroizing::new(hex::decode(key).ok()?);
    let key: [u8; 32] = key.as_slice().try_into().ok()?;
    Some(FileKey {
        id,
        key: Zeroizing::new(key),
    })
}

/// A `key-file` slot wrapping `data_key` (whose id is `data_key_id`) under `fk`.
pub fn key_file_slot(
    fk: &FileKey,
    data_key_id: &[u8; 16],
    data_key: &[u8; 32],
    nonce: [u8; 12],
) -> Vec<u8> {
    let ct = wrap(
        &fk.key,
        &nonce,
        &aad(KEY_FILE_SLOT, data_key_id, &fk.id),
        data_key,
    );
    let mut data = vec![SLOT_VERSION];
    data.extend_from_slice(&fk.id);
    data.extend_from_slice(&nonce);
    data.extend_from_slice(&ct);
    data
}

/// The id of the key file a `key-file` slot was made with.
pub fn key_file_slot_id(data: &[u8]) -> Result<[u8; 16], SlotError> {
    if data.len() != KEY_FILE_SLOT_LEN || data[0] != SLOT_VERSION {
        return Err(SlotError::Malformed("key-file slot has an unknown layout"));
    }
    Ok(data[1..17].try_into().expect("16 bytes"))
}

pub fn open_key_file_slot(
    fk: &FileKey,
    data_key_id: &[u8; 16],
    data: &[u8],
) -> Result<Zeroizing<[u8; 32]>, SlotError> {
    let id = key_file_slot_id(data)?;
    if id != fk.id {
        return Err(SlotError::WrongKey);
    }
    unwrap(
        &fk.key,
        &data[17..29],
        &aad(KEY_FILE_SLOT, data_key_id, &fk.id),
        &data[29..],
    )
}

/// A `passphrase` slot wrapping `data_key` under argon2id(passphrase, salt, params).
pub fn passphrase_slot(
    passphrase: &str,
    p: KdfParams,
    salt: [u8; 16],
    data_key_id: &[u8; 16],
    data_key: &[u8; 32],
    nonce: [u8; 12],
) -> Result<Vec<u8>, SlotError> {
    let kek = derive(passphrase, &salt, p)?;
    let params = p.bytes();
    let ct = wrap(
        &kek,
        &nonce,
        &aad(
            PASSPHRASE_SLOT,
            data_key_id,
            &[params.as_slice(), &salt].concat(),
        ),
        data_key,
    );
    let mut data = vec![SLOT_VERSION];
    data.extend_from_slice(&params);
    data.extend_from_slice(&salt);
    data.extend_from_slice(&nonce);
    data.extend_from_slice(&ct);
    Ok(data)
}

pub fn open_passphrase_slot(
    passphrase: &str,
    data_key_id: &[u8; 16],
    data: &[u8],
) -> Result<Zeroizing<[u8; 32]>, SlotError> {
    if data.len() != PASSPHRASE_SLOT_LEN || data[0] != SLOT_VERSION {
        return Err(SlotError::Malformed(
            "passphrase slot has an unknown layout",
        ));
    }
    let be = |i: usize| u32::from_be_bytes(data[i..i + 4].try_into().expect("4 bytes"));
    let p = KdfParams {
        m_cost_kib: be(1),
        t_cost: be(5),
        p_cost: be(9),
    };
    let (params, salt, nonce, ct) = (&data[1..13], &data[13..29], &data[29..41], &data[41..]);
    let kek = derive(passphrase, salt, p)?;
    unwrap(
        &kek,
        nonce,
        &aad(PASSPHRASE_SLOT, data_key_id, &[params, salt].concat()),
        ct,
    )
}

/// Slot kinds whose wrapping key lives in an OS keyring: `keyring` (durable: Secret
/// Service, macOS Keychain, Windows Credential Manager) and `kernel-keyring` (the Linux
/// kernel's persistent keyring, lost at reboot and after idle expiry).
pub const KEYRING_SLOT: &str = "keyring";
pub const KERNEL_KEYRING_SLOT: &str = "kernel-keyring";
const MAX_BACKEND_LEN: usize = 32;

/// What a keyring slot says about where its wrapping key lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringRef {
    /// `secret-service`, `keyutils`, `apple-keychain`, `windows-credential`.
    pub backend: String,
    /// The wrapping key's id; the keyring entry is named after it.
    pub id: [u8; 16],
}

fn keyring_params(r: &KeyringRef) -> Vec<u8> {
    let mut p = vec![r.backend.len() as u8];
    p.extend_from_slice(r.backend.as_bytes());
    p.extend_from_slice(&r.id);
    p
}

/// A `keyring` or `kernel-keyring` slot: version, backend (length-prefixed), wrapping-key
/// id, nonce, wrapped data key. The wrapping key itself is in the keyring.
pub fn keyring_slot(
    kind: &str,
    backend: &str,
    wk: &FileKey,
    data_key_id: &[u8; 16],
    data_key: &[u8; 32],
    nonce: [u8; 12],
) -> Vec<u8> {
    assert!(
        !backend.is_empty() && backend.len() <= MAX_BACKEND_LEN && backend.is_ascii(),
        "keyring backend names are short ASCII"
    );
    let params = keyring_params(&KeyringRef {
        backend: backend.into(),
        id: wk.id,
    });
    let ct = wrap(&wk.key, &nonce, &aad(kind, data_key_id, &params), data_key);
    let mut data = vec![SLOT_VERSION];
    data.extend_from_slice(&params);
    data.extend_from_slice(&nonce);
    data.extend_from_slice(&ct);
    data
}

/// Where a keyring slot's wrapping key lives (without opening it).
pub fn parse_keyring_slot(data: &[u8]) -> Result<KeyringRef, SlotError> {
    let bad = SlotError::Malformed("keyring slot has an unknown layout");
    if data.len() < 2 || data[0] != SLOT_VERSION {
        return Err(bad);
    }
    let n = data[1] as usize;
    if n == 0 || n > MAX_BACKEND_LEN || data.len() != 2 + n + 16 + 12 + 48 {
        return Err(bad);
    }
    let backend = std::str::from_utf8(&data[2..2 + n])
        .ok()
        .filter(|b| b.is_ascii())
        .ok_or(SlotError::Malformed(
            "keyring slot names an invalid backend",
        ))?;
    Ok(KeyringRef {
        backend: backend.into(),
        id: data[2 + n..18 + n].try_into().expect("16 bytes"),
    })
}

pub fn open_keyring_slot(
    kind: &str,
    wk: &FileKey,
    data_key_id: &[u8; 16],
    data: &[u8],
) -> Result<Zeroizing<[u8; 32]>, SlotError> {
    let r = parse_keyring_slot(data)?;
    if r.id != wk.id {
        return Err(SlotError::WrongKey);
    }
    let at = 2 + r.backend.len() + 16;
    unwrap(
        &wk.key,
        &data[at..at + 12],
        &aad(kind, data_key_id, &keyring_params(&r)),
        &data[at + 12..],
    )
}

/// The argon2id parameters a passphrase slot was made with (for display and checks).
pub fn passphrase_slot_params(data: &[u8]) -> Result<KdfParams, SlotError> {
    if data.len() != PASSPHRASE_SLOT_LEN || data[0] != SLOT_VERSION {
        return Err(SlotError::Malformed(
            "passphrase slot has an unknown layout",
        ));
    }
    let be = |i: usize| u32::from_be_bytes(data[i..i + 4].try_into().expect("4 bytes"));
    Ok(KdfParams {
        m_cost_kib: be(1),
        t_cost: be(5),
        p_cost: be(9),
    })
}

/// The OS keyring service under which keyring slots' entries are kept (the entry's name is
/// the wrapping key's id in hex).
pub const KEYRING_SERVICE: &str = "credlock";

/// One line about a slot, for `slot list` and `doctor`: which source opens it, never key
/// material. Every Rust host (the native CLI, the WASI command) describes slots with this,
/// so that they print the same thing.
pub fn describe_slot(kind: &str, data: &[u8]) -> String {
    match kind {
        KEY_FILE_SLOT => match key_file_slot_id(data) {
            Ok(id) => format!("key file {}", hex::encode(id)),
            Err(_) => "damaged key-file slot".into(),
        },
        PASSPHRASE_SLOT => match passphrase_slot_params(data) {
            Ok(p) if p.m_cost_kib % 1024 == 0 => format!(
                "argon2id m={} MiB t={} p={}",
                p.m_cost_kib / 1024,
                p.t_cost,
                p.p_cost
            ),
            Ok(p) => format!(
                "argon2id m={} KiB t={} p={}",
                p.m_cost_kib, p.t_cost, p.p_cost
            ),
            Err(_) => "damaged passphrase slot".into(),
        },
        KEYRING_SLOT | KERNEL_KEYRING_SLOT => match parse_keyring_slot(data) {
            Ok(r) => format!(
                "{} entry {KEYRING_SERVICE}/{}{}",
                r.backend,
                hex::encode(r.id),
                if kind == KERNEL_KEYRING_SLOT {
                    " (volatile: lost at reboot)"
                } else {
                    ""
                }
            ),
            Err(_) => "damaged keyring slot".into(),
        },
        _ => format!(
            "{} bytes (a kind this credlock does not know; kept as is)",
            data.len()
        ),
    }
}

/// AES-256-GCM with a data key, as the `sealing-key` resource does.
pub fn seal(key: &[u8; 32], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
    (nonce.len() == 12).then(|| {
        Aes256Gcm::new(key.into())
            .encrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encrypt")
    })
}

pub fn open(key: &[u8; 32], nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
    if nonce.len() != 12 {
        return None;
    }
    Aes256Gcm::new(key.into())
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

#[cfg(test)]
mod tests {
    //! Pins the slot layouts: a change here is a format change.
    use super::*;

    #[test]
    fn slots_round_trip_and_reject_wrong_keys() {
        let fk = FileKey {
            id: [1; 16],
            key: Zeroizing::new([2; 32]),
        };
        let data = key_file_slot(&fk, &[3; 16], &[4; 32], [5; 12]);
        assert_eq!(data.len(), 77);
        assert_eq!(*open_key_file_slot(&fk, &[3; 16], &data).unwrap(), [4; 32]);
        let other = FileKey {
            id: [1; 16],
            key: Zeroizing::new([9; 32]),
        };
        assert_eq!(
            open_key_file_slot(&other, &[3; 16], &data).err(),
            Some(SlotError::WrongKey)
        );
        assert_eq!(
            open_key_file_slot(&fk, &[8; 16], &data).err(),
            Some(SlotError::WrongKey),
            "bound to the data key id"
        );

        let fast = KdfParams {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        };
        let data = passphrase_slot("pw", fast, [6; 16], &[3; 16], &[4; 32], [7; 12]).unwrap();
        assert_eq!(data.len(), 89);
        assert_eq!(
            *open_passphrase_slot("pw", &[3; 16], &data).unwrap(),
            [4; 32]
        );
        assert_eq!(
            open_passphrase_slot("nope", &[3; 16], &data).err(),
            Some(SlotError::WrongKey)
        );
        let mut greedy = data.clone();
        greedy[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            open_passphrase_slot("pw", &[3; 16], &greedy),
            Err(SlotError::Malformed(_))
        ));
    }

    #[test]
    fn keyring_slots_name_their_entry_and_bind_kind_and_backend() {
        let wk = FileKey {
            id: [1; 16],
            key: Zeroizing::new([2; 32]),
        };
        let data = keyring_slot(
            KEYRING_SLOT,
            "secret-service",
            &wk,
            &[3; 16],
            &[4; 32],
            [5; 12],
        );
        assert_eq!(data.len(), 1 + 1 + 14 + 16 + 12 + 48);
        assert_eq!(
            parse_keyring_slot(&data).unwrap(),
            KeyringRef {
                backend: "secret-service".into(),
                id: [1; 16]
            }
        );
        assert_eq!(
            *open_keyring_slot(KEYRING_SLOT, &wk, &[3; 16], &data).unwrap(),
            [4; 32]
        );
        // The kind is in the AAD: a durable slot cannot be relabelled volatile or back.
        assert_eq!(
            open_keyring_slot(KERNEL_KEYRING_SLOT, &wk, &[3; 16], &data).err(),
            Some(SlotError::WrongKey)
        );
        let mut relabelled = data.clone();
        relabelled[2..2 + 14].copy_from_slice(b"secret-servicf");
        assert_eq!(
            open_keyring_slot(KEYRING_SLOT, &wk, &[3; 16], &relabelled).err(),
            Some(SlotError::WrongKey)
        );
        assert!(parse_keyring_slot(&data[..20]).is_err());
    }

    #[test]
    fn slots_are_described_without_key_material() {
        let fk = FileKey {
            id: [0xab; 16],
            key: Zeroizing::new([2; 32]),
        };
        let data = key_file_slot(&fk, &[3; 16], &[4; 32], [5; 12]);
        assert_eq!(
            describe_slot(KEY_FILE_SLOT, &data),
            format!("key file {}", "ab".repeat(16))
        );
        let fast = KdfParams {
            m_cost_kib: 2048,
            t_cost: 1,
            p_cost: 1,
        };
        let data = passphrase_slot("pw", fast, [6; 16], &[3; 16], &[4; 32], [7; 12]).unwrap();
        assert_eq!(
            describe_slot(PASSPHRASE_SLOT, &data),
            "argon2id m=2 MiB t=1 p=1"
        );
        let data = keyring_slot(
            KERNEL_KEYRING_SLOT,
            "keyutils",
            &fk,
            &[3; 16],
            &[4; 32],
            [5; 12],
        );
        assert_eq!(
            describe_slot(KERNEL_KEYRING_SLOT, &data),
            format!(
                "keyutils entry credlock/{} (volatile: lost at reboot)",
                "ab".repeat(16)
            )
        );
        assert_eq!(describe_slot(KEY_FILE_SLOT, b"x"), "damaged key-file slot");
        assert_eq!(
            describe_slot("tpm", &[0; 9]),
            "9 bytes (a kind this credlock does not know; kept as is)"
        );
    }

    #[test]
    fn key_file_text() {
        let text = format_key_file(&[0xab; 16], &[0xcd; 32]);
        assert!(text.starts_with("credlock-key-file-v1 abab"));
        let fk = parse_key_file(text.as_bytes()).unwrap();
        assert_eq!((fk.id, *fk.key), ([0xab; 16], [0xcd; 32]));
        assert!(parse_key_file(b"credlock-key-file-v1 zz 00").is_none());
    }
}
