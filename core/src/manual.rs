//! Design notes that explain the code, kept beside it.

/// # The locking protocol
///
/// Two kinds of lock, both advisory `flock(2)` on sidecar files that are never deleted
/// (FORMAT.md, "Locks"), so every host in every language takes the same locks:
///
/// - **store** — shared for a read, exclusive for a read-modify-write. Writes replace the
///   file atomically, so a reader would never see a torn file even without the lock; the
///   shared lock additionally makes a read and its key lookup see one version.
/// - **refresh(tenant)** — exclusive, held across the token-endpoint call, so only one
///   process spends a tenant's refresh token. Its wait is longer than the HTTP timeout plus
///   two store-lock waits: the holder may be inside a healthy but slow refresh.
///
/// Lock order is refresh before store, never the reverse, so no two processes can wait on
/// each other. No lock is held while waiting for another lock of the same kind.
///
/// ## Every mutation is a merge
/// Take the exclusive store lock, *re-read* the file, apply only this call's change to what
/// was read, seal, replace, release. Two processes changing two tenants therefore both
/// survive; two changing one tenant are serialised. The types enforce the order:
/// `Store::commit` needs the lock proof and consumes the read made under that very lock.
///
/// ## Group commit
/// A `put` that finds the store lock busy posts its change, sealed, for the next holder, which
/// writes every posted change with its own in one durable write and only then leaves each
/// poster its receipt; a poster whose change was not acknowledged writes it itself. The merge
/// above is unchanged: a holder applies each posted change to what it read under its lock,
/// one after another. See `queue.rs` and FORMAT.md, "Queued writes".
///
/// ## Refresh
/// 1. Read without the refresh lock; if the token is fresh enough, done (the hot path).
/// 2. Take the tenant's refresh lock. **Re-read under it.** If another process refreshed
///    meanwhile, adopt its token: an expiry costs one refresh, not one per process.
/// 3. Record a *refresh intent* (SHA-256 of the refresh token about to be spent) in the
///    store, durably, through the merge.
/// 4. Present the refresh token read in step 2 (never one read before the lock).
/// 5. Merge the answer, comparing the stored refresh token with the one presented: a
///    concurrent `put` (a new login) always wins; `invalid_grant` marks the tenant for
///    re-login only if the presented token is still the stored one.
/// 6. Clear the intent in the same write. If the process dies or the reply is lost between
///    3 and 5, the intent stays: the next process reports `refresh-outcome-unknown` instead
///    of presenting a token that the server may already have rotated (RFC 9700 §4.14 reuse
///    detection would revoke the whole grant), unless the tenant allows one retry.
///
/// A definite answer that spent nothing (an OAuth error other than `invalid_grant`, a 5xx
/// status, a connection never made) clears the intent. A timeout, a connection broken
/// after sending, or an unreadable 2xx reply keep it.
pub mod locking {}
