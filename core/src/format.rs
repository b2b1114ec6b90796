//! The sealed store file: a plaintext header, then the AEAD-sealed body.
//!
//! FORMAT.md is the specification; this module implements it, and its tests pin it.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "CREDLOCK"
//! 8       2     format version, u16 big-endian (1)
//! 10      2     header length H in bytes, u16 big-endian (covers offsets 0..H)
//! 12      16    data key id
//! 28      1     slot count n (1..=16)
//! 29      ...   n slots: kind length u8, kind (ASCII), data length u16 BE, data
//! H-12    12    nonce
//! H       ...   AES-256-GCM ciphertext of the body, then the 16-byte tag
//! ```
//! The whole header (bytes 0..H) is the additional authenticated data: a header edited in
//! any byte makes the body fail to open.

use crate::platform::KeySlot;

pub const MAGIC: &[u8; 8] = b"CREDLOCK";
/// The only format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
pub const KEY_ID_LEN: usize = 16;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const MAX_SLOTS: usize = 16;
pub const MAX_SLOT_KIND_LEN: usize = 32;

/// Why a file is not a readable credlock header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Not a credlock file at all.
    NotAStore(String),
    /// A credlock file of a version this build does not know.
    UnsupportedVersion(u16),
    /// A credlock v1 file whose header is damaged.
    Corrupt(String),
}

/// A parsed header. `encode` gives back exactly the bytes `decode` read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key_id: [u8; KEY_ID_LEN],
    pub slots: Vec<KeySlot>,
    pub nonce: [u8; NONCE_LEN],
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        assert!(
            !self.slots.is_empty() && self.slots.len() <= MAX_SLOTS,
            "slot count out of range"
        );
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        out.extend_from_slice(&[0, 0]); // header length, patched below
        out.extend_from_slice(&self.key_id);
        out.push(self.slots.len() as u8);
        for slot in &self.slots {
            assert!(
                !slot.kind.is_empty()
                    && slot.kind.len() <= MAX_SLOT_KIND_LEN
                    && slot.kind.is_ascii(),
                "slot kind must be 1..=32 ASCII bytes"
            );
            assert!(slot.data.len() <= u16::MAX as usize, "slot data too long");
            out.push(slot.kind.len() as u8);
            out.extend_from_slice(slot.kind.as_bytes());
            out.extend_from_slice(&(slot.data.len() as u16).to_be_bytes());
            out.extend_from_slice(&slot.data);
        }
        out.extend_from_slice(&self.nonce);
        // Slots come from a decoded header or the host's `create_key`, both small; a header
        // over 64 KiB is a host bug, not a state to encode.
        let len = u16::try_from(out.len()).expect("credlock header over 64 KiB");
        out[10..12].copy_from_slice(&len.to_be_bytes());
        out
    }

    /// Parse the header at the start of `file`; returns it and the header length H.
    pub fn decode(file: &[u8]) -> Result<(Header, usize), HeaderError> {
        if file.len() < MAGIC.len() || &file[..MAGIC.len()] != MAGIC {
            return Err(HeaderError::NotAStore(if file.is_empty() {
                "the file is empty".into()
            } else {
                "the file does not start with the credlock magic".into()
            }));
        }
        let mut r = Reader {
            buf: file,
            pos: MAGIC.len(),
        };
        let version = r.u16().ok_or_else(|| truncated("version"))?;
        if version == 0 {
            // No credlock ever wrote version 0: a flipped bit, not a newer format.
            return Err(HeaderError::Corrupt(
                "format version 0 does not exist: the header is damaged".into(),
            ));
        }
        if version != FORMAT_VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        let header_len = r.u16().ok_or_else(|| truncated("header length"))? as usize;
        if header_len > file.len() {
            return Err(HeaderError::Corrupt(format!(
                "the header claims {header_len} bytes but the file has {}",
                file.len()
            )));
        }
        // From here on, read only inside the declared header.
        let mut r = Reader {
            buf: &file[..header_len],
            pos: r.pos,
        };
        let key_id: [u8; KEY_ID_LEN] = r.array().ok_or_else(|| truncated("key id"))?;
        let count = r.u8().ok_or_else(|| truncated("slot count"))? as usize;
        if count == 0 || count > MAX_SLOTS {
            return Err(HeaderError::Corrupt(format!(
                "{count} key slots (allowed: 1 to {MAX_SLOTS})"
            )));
        }
        let mut slots = Vec::with_capacity(count);
        for i in 0..count {
            let kind_len = r.u8().ok_or_else(|| truncated("slot kind length"))? as usize;
            let kind = r.bytes(kind_len).ok_or_else(|| truncated("slot kind"))?;
            if kind_len == 0
                || kind_len > MAX_SLOT_KIND_LEN
                || !kind.iter().all(|b| b.is_ascii_graphic())
            {
                return Err(HeaderError::Corrupt(format!(
                    "slot {i} has an invalid kind"
                )));
            }
            let data_len = r.u16().ok_or_else(|| truncated("slot data length"))? as usize;
            let data = r.bytes(data_len).ok_or_else(|| truncated("slot data"))?;
            slots.push(KeySlot {
                // Checked ASCII above, so this is valid UTF-8.
                kind: String::from_utf8(kind.to_vec()).expect("ascii"),
                data: data.to_vec(),
            });
        }
        let nonce: [u8; NONCE_LEN] = r.array().ok_or_else(|| truncated("nonce"))?;
        if r.pos != header_len {
            return Err(HeaderError::Corrupt(format!(
                "the header length says {header_len} bytes but its fields take {}",
                r.pos
            )));
        }
        Ok((
            Header {
                key_id,
                slots,
                nonce,
            },
            header_len,
        ))
    }
}

fn truncated(what: &str) -> HeaderError {
    HeaderError::Corrupt(format!("the header is truncated (in the {what})"))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)
            .map(|b| b.try_into().expect("length checked by bytes()"))
    }
}

/// The version byte that starts every tenant record (FORMAT.md, "Tenant records").
pub const RECORD_VERSION: u8 = 1;

/// A sealed tenant record: `RECORD_VERSION`, a 12-byte nonce, then AES-256-GCM ciphertext and
/// tag. Its additional data binds it to the key the header names and to the record's id, so
/// that a record moved to another tenant's id, or left from another key, does not open.
pub fn record_aad(key_id: &[u8], id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + key_id.len() + id.len());
    aad.extend_from_slice(b"credlock tenant record\0");
    aad.push(RECORD_VERSION);
    aad.extend_from_slice(key_id);
    aad.extend_from_slice(id.as_bytes());
    aad
}

/// Split a sealed record into its nonce and ciphertext. A `Corrupt` detail says what is wrong
/// with the record ("is truncated"), for a message that names it.
pub fn record_parts(sealed: &[u8]) -> Result<(&[u8], &[u8]), HeaderError> {
    match sealed.split_first() {
        None => Err(HeaderError::Corrupt("is empty".into())),
        Some((&v, _)) if v != RECORD_VERSION => Err(HeaderError::UnsupportedVersion(u16::from(v))),
        Some((_, rest)) if rest.len() < NONCE_LEN + TAG_LEN => {
            Err(HeaderError::Corrupt("is truncated".into()))
        }
        Some((_, rest)) => Ok(rest.split_at(NONCE_LEN)),
    }
}

#[cfg(test)]
mod tests {
    //! Pins the byte layout: a change here is a format change and needs a new version.
    use super::*;

    fn sample() -> Header {
        Header {
            key_id: [7; 16],
            slots: vec![
                KeySlot {
                    kind: "key-file".into(),
                    data: vec![1, 2, 3],
                },
                KeySlot {
                    kind: "passphrase".into(),
                    data: vec![9; 40],
                },
            ],
            nonce: [5; 12],
        }
    }

    #[test]
    fn round_trip_same_bytes() {
        let h = sample();
        let bytes = h.encode();
        let (back, len) = Header::decode(&bytes).unwrap();
        assert_eq!(len, bytes.len());
        assert_eq!(back, h);
        assert_eq!(back.encode(), bytes);
        // Layout spot checks against FORMAT.md.
        assert_eq!(&bytes[0..8], b"CREDLOCK");
        assert_eq!(&bytes[8..10], &[0, 1]);
        assert_eq!(
            u16::from_be_bytes([bytes[10], bytes[11]]) as usize,
            bytes.len()
        );
        assert_eq!(&bytes[12..28], &[7; 16]);
        assert_eq!(bytes[28], 2);
        assert_eq!(&bytes[bytes.len() - 12..], &[5; 12]);
    }

    #[test]
    fn distinguishes_not_a_store_unknown_version_and_corrupt() {
        assert!(matches!(
            Header::decode(b""),
            Err(HeaderError::NotAStore(_))
        ));
        assert!(matches!(
            Header::decode(b"{\"json\": 1}"),
            Err(HeaderError::NotAStore(_))
        ));
        let mut bytes = sample().encode();
        bytes[9] = 2;
        assert_eq!(
            Header::decode(&bytes),
            Err(HeaderError::UnsupportedVersion(2))
        );
        let bytes = sample().encode();
        for cut in 8..bytes.len() {
            assert!(
                matches!(Header::decode(&bytes[..cut]), Err(HeaderError::Corrupt(_))),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn rejects_inconsistent_lengths() {
        let mut bytes = sample().encode();
        bytes.extend_from_slice(&[0; 40]);
        // Claim a longer header than the fields take.
        let longer = (bytes.len() - 10) as u16;
        bytes[10..12].copy_from_slice(&longer.to_be_bytes());
        assert!(matches!(
            Header::decode(&bytes),
            Err(HeaderError::Corrupt(_))
        ));
    }
}
