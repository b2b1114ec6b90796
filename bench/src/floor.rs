//! The physical floor: the same work as credlock with nothing of credlock in it. A read is
//! flock(shared) + read + AES-256-GCM open; a write is temp file + fsync + rename + directory
//! fsync; a read-modify-write is flock(exclusive) + read + open + modify + seal + write.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use fs4::fs_std::FileExt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const KEY: [u8; 32] = [5; 32];

pub struct Floor {
    pub dir: PathBuf,
}

impl Floor {
    pub fn new(dir: &Path) -> Floor {
        std::fs::create_dir_all(dir).unwrap();
        Floor {
            dir: dir.to_path_buf(),
        }
    }
    fn data(&self) -> PathBuf {
        self.dir.join("floor.sealed")
    }
    fn lock_path(&self) -> PathBuf {
        self.dir.join("floor.lock")
    }

    fn lock(&self, exclusive: bool) -> File {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.lock_path())
            .unwrap();
        if exclusive {
            FileExt::lock_exclusive(&f).unwrap();
        } else {
            FileExt::lock_shared(&f).unwrap();
        }
        f
    }

    pub fn seal(plain: &[u8], nonce: u64) -> Vec<u8> {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&nonce.to_le_bytes());
        let mut out = n.to_vec();
        out.extend(
            Aes256Gcm::new(&KEY.into())
                .encrypt(
                    Nonce::from_slice(&n),
                    Payload {
                        msg: plain,
                        aad: b"floor",
                    },
                )
                .unwrap(),
        );
        out
    }

    pub fn open(sealed: &[u8]) -> Vec<u8> {
        Aes256Gcm::new(&KEY.into())
            .decrypt(
                Nonce::from_slice(&sealed[..12]),
                Payload {
                    msg: &sealed[12..],
                    aad: b"floor",
                },
            )
            .unwrap()
    }

    /// Durable atomic write: the floor of one `put`.
    pub fn atomic_write(&self, contents: &[u8]) {
        let tmp = self.dir.join(format!(".floor.tmp-{}", std::process::id()));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .unwrap();
        f.write_all(contents).unwrap();
        f.sync_all().unwrap();
        std::fs::rename(&tmp, self.data()).unwrap();
        File::open(&self.dir).unwrap().sync_all().unwrap();
    }

    /// The floor of one `token` read: lock shared, read, open.
    pub fn read(&self) -> Vec<u8> {
        let _l = self.lock(false);
        let mut buf = Vec::new();
        File::open(self.data())
            .unwrap()
            .read_to_end(&mut buf)
            .unwrap();
        Floor::open(&buf)
    }

    /// The floor of one contended update: a JSON map of counters, one per worker.
    pub fn increment(&self, who: &str, nonce: u64) {
        let _l = self.lock(true);
        let mut map: serde_json::Map<String, serde_json::Value> = match std::fs::read(self.data()) {
            Ok(b) => serde_json::from_slice(&Floor::open(&b)).unwrap(),
            Err(_) => serde_json::Map::new(),
        };
        let n = map.get(who).and_then(|v| v.as_u64()).unwrap_or(0) + 1;
        map.insert(who.to_owned(), n.into());
        self.atomic_write(&Floor::seal(&serde_json::to_vec(&map).unwrap(), nonce));
    }

    pub fn counts(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_slice(&Floor::open(&std::fs::read(self.data()).unwrap())).unwrap()
    }
}
