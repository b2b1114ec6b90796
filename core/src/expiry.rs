//! When an access token expires, read from every shape programs write it in.
//!
//! One parser for `put`, `import`, login results and refresh replies, so that a token's
//! expiry means the same thing wherever it came from. An expiry dropped or misread is the
//! worst kind of bad input: a dead token is served as valid (its caller meets 401s that the
//! single-flight refresh never sees), or a live one is never refreshed. So every field is
//! either understood or refused; none is silently ignored.
//!
//! The forms (FORMAT.md, "Token expiry"):
//!
//! | field | written by | read as |
//! |---|---|---|
//! | `expires_in` | RFC 6749 §5.1 | seconds from when the reply was received (number or decimal string) |
//! | `expires_at` | authlib, many SDKs, JS programs | an absolute time (below) |
//! | `expiry` | Go's `oauth2.Token` | an absolute time; Go's zero time `0001-01-01T00:00:00Z` is "no expiry" |
//! | `expiresAt` | Claude Code, JS programs | an absolute time |
//! | `expires_on` | Azure, MSAL | an absolute time |
//!
//! An absolute time is an RFC 3339 string (fractional seconds and any offset allowed), or a
//! Unix time as a number or decimal string: seconds, unless it can only be milliseconds
//! (≥ 10^11: as seconds that would be past the year 5000).
//!
//! Tokens kept by a program (`put`, `import`) are read strictly: a field whose name holds
//! `expir` that is none of the above (nor one of the other lifetimes in
//! [`OTHER_LIFETIMES`]) is refused, and so are fields that disagree. A token endpoint's reply
//! is read leniently, because refusing it after the refresh token was spent would strand the
//! tenant: unknown fields are kept verbatim, and of fields that disagree the earliest wins.

use serde_json::{Map, Value};

/// Fields holding the access token's absolute expiry, in the order they are reported.
const ABSOLUTE: &[&str] = &["expires_at", "expiry", "expiresAt", "expires_on"];

/// Lifetimes of something other than the access token (the refresh token's, Azure's
/// extended validity). Understood, so not refused; kept verbatim with the token.
pub const OTHER_LIFETIMES: &[&str] = &[
    "refresh_expires_in",
    "refresh_token_expires_in",
    "refresh_token_expires_at",
    "ext_expires_in",
    "extended_expires_on",
];

/// The longest lifetime credlock believes (ten years); longer is treated as a broken reply.
pub const MAX_EXPIRES_IN_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// How much of a token's `expires_in` credlock assumes was already spent: servers count in
/// whole seconds.
pub const EXPIRY_GRANULARITY_MS: u64 = 1000;

/// A number at or above this can only be Unix milliseconds: as seconds it would be past the
/// year 5000.
const MILLISECONDS_FROM: f64 = 1e11;

/// Two absolute expiries that differ by more than this disagree. They come from one writer's
/// clock, so only rounding (milliseconds against seconds) separates honest ones.
const ABSOLUTE_TOLERANCE_MS: u64 = 5_000;

/// How much later than `expires_in` allows an absolute expiry may be before the two disagree.
/// `expires_in` counts from our clock, the absolute time from the server's: allow skew.
const RELATIVE_TOLERANCE_MS: u64 = 60_000;

/// 9999-12-31T23:59:59Z, the last time RFC 3339 can write; anything later is misread
/// (microseconds, say).
const LAST_TIME_MS: u64 = 253_402_300_799_000;

/// What the accepted forms are, for error messages.
pub const ACCEPTED_FORMS: &str = "`expires_in` (seconds from receipt), or an absolute time in \
`expires_at`, `expiry`, `expiresAt` or `expires_on` (RFC 3339, or Unix seconds or \
milliseconds)";

/// How to read a token's expiry fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// When the token was received, in Unix milliseconds: what `expires_in` counts from.
    pub received_at_ms: u64,
    /// Tokens a program kept (refuse what is not understood), or a reply a token endpoint
    /// just sent (keep it, take the earliest expiry).
    pub strict: bool,
}

impl Reading {
    /// A reply a token endpoint sent just now.
    pub fn reply(now_ms: u64) -> Self {
        Reading {
            received_at_ms: now_ms,
            strict: false,
        }
    }

    /// Tokens a user or program kept, received at `received_at_ms` (now, unless the file
    /// they came from says when it was written).
    pub fn kept(received_at_ms: u64) -> Self {
        Reading {
            received_at_ms,
            strict: true,
        }
    }
}

/// Take the expiry fields out of `obj` and return when the access token expires (Unix
/// milliseconds), or `None` if it does not say. Fields not taken stay in `obj`.
pub fn take_expiry(obj: &mut Map<String, Value>, how: Reading) -> Result<Option<u64>, String> {
    if how.strict {
        if let Some(name) = obj.keys().find(|k| {
            k.to_ascii_lowercase().contains("expir")
                && k.as_str() != "expires_in"
                && !ABSOLUTE.contains(&k.as_str())
                && !OTHER_LIFETIMES.contains(&k.as_str())
        }) {
            return Err(format!(
                "`{name}` is not an expiry credlock understands; it reads {ACCEPTED_FORMS}"
            ));
        }
    }
    let relative = match obj.remove("expires_in") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let lifetime_ms = lifetime_seconds(&v)?.saturating_mul(1000);
            // Servers stamp tokens in whole seconds (`exp = iat + expires_in`, `iat` rounded
            // down), so up to a second of the lifetime may be gone before it is counted; but
            // never assume more than half of it gone, or a 1-second token would be born dead.
            let spent_ms = EXPIRY_GRANULARITY_MS.min(lifetime_ms / 2);
            Some(how.received_at_ms.saturating_add(lifetime_ms - spent_ms))
        }
    };
    let mut absolute: Vec<(&str, u64)> = Vec::new();
    for name in ABSOLUTE {
        let Some(v) = obj.remove(*name).filter(|v| !v.is_null()) else {
            continue;
        };
        // `None` is Go's zero time: the writer says the token does not expire. Nothing to
        // compare; another field that gives a time still counts.
        if let Some(ms) = absolute_ms(name, &v)? {
            absolute.push((name, ms));
        }
    }
    let earliest = absolute.iter().min_by_key(|(_, ms)| *ms).copied();
    if how.strict {
        let latest = absolute.iter().max_by_key(|(_, ms)| *ms).copied();
        if let (Some((a, a_ms)), Some((b, b_ms))) = (earliest, latest) {
            if b_ms - a_ms > ABSOLUTE_TOLERANCE_MS {
                return Err(format!(
                    "`{a}` ({}) and `{b}` ({}) disagree; keep the one that is right and remove the other",
                    rfc3339(a_ms),
                    rfc3339(b_ms)
                ));
            }
        }
        // A token can expire sooner than `expires_in` says (it was received before it was
        // saved), never later.
        if let (Some(rel), Some((a, a_ms))) = (relative, latest) {
            if a_ms > rel.saturating_add(RELATIVE_TOLERANCE_MS) {
                return Err(format!(
                    "`{a}` ({}) is later than `expires_in` allows ({} at the latest); \
                     keep the one that is right and remove the other",
                    rfc3339(a_ms),
                    rfc3339(rel)
                ));
            }
        }
    }
    Ok(match (earliest, relative) {
        (Some((_, a)), Some(r)) => Some(a.min(r)),
        (Some((_, a)), None) => Some(a),
        (None, r) => r,
    })
}

/// `expires_in`: a non-negative number of seconds, at most ten years.
fn lifetime_seconds(v: &Value) -> Result<u64, String> {
    let n = match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        // Some servers send numbers as strings.
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    let n = n.ok_or("`expires_in` is not a non-negative number of seconds")?;
    if n > MAX_EXPIRES_IN_SECONDS {
        // The value as the server wrote it: `1e30` saturates to u64::MAX once converted.
        return Err(format!("`expires_in` is {v} seconds, more than ten years"));
    }
    Ok(n)
}

/// An absolute expiry in Unix milliseconds; `None` for Go's zero time ("no expiry").
fn absolute_ms(name: &str, v: &Value) -> Result<Option<u64>, String> {
    let not_understood = || {
        format!(
            "`{name}` is not a time credlock can read: give RFC 3339 \
             (2030-01-01T00:00:00Z) or Unix seconds or milliseconds"
        )
    };
    let ms = match v {
        Value::Number(n) => unix_ms(n.as_f64().ok_or_else(not_understood)?),
        Value::String(s) => {
            let s = s.trim();
            match s.parse::<f64>() {
                Ok(f) if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') => unix_ms(f),
                _ => match parse_rfc3339(s) {
                    Some(t) if t == GO_ZERO_TIME => return Ok(None),
                    Some(t) if t < 0 => None,
                    Some(t) => Some(t as u64),
                    None => return Err(not_understood()),
                },
            }
        }
        _ => return Err(not_understood()),
    };
    match ms {
        Some(ms) if ms <= LAST_TIME_MS => Ok(Some(ms)),
        _ => Err(format!(
            "`{name}` is {v}, which is no time credlock can read as an expiry \
             (before 1970 or after 9999: microseconds?)"
        )),
    }
}

/// A Unix time in seconds, or in milliseconds when it can only be that.
fn unix_ms(f: f64) -> Option<u64> {
    if !f.is_finite() || f < 0.0 {
        return None;
    }
    let ms = if f >= MILLISECONDS_FROM {
        f
    } else {
        f * 1000.0
    };
    // Rounded down: a token is never taken for fresher than it is.
    (ms <= LAST_TIME_MS as f64).then_some(ms as u64)
}

/// Go's `time.Time{}` as Unix milliseconds: what `oauth2.Token` writes for "no expiry".
const GO_ZERO_TIME: i64 = -62_135_596_800_000;

/// Parse an RFC 3339 date-time (`2020-01-01T00:00:00Z`, `2020-01-01T01:00:00.123456789+01:00`)
/// into Unix milliseconds, fraction rounded down. `T` may be a space or lowercase, as RFC 3339
/// §5.6 allows.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        // The first three digits are the milliseconds; the rest is rounded away (down).
        let frac = &b[start..i.min(start + 3)];
        millis = frac.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
            * 10i64.pow(3 - frac.len() as u32);
    }
    let offset_s = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (h, m) = (digits(i + 1..i + 3)?, digits(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    // A leap second is read as the second after it.
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(secs * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-29T23:05:00Z` from Unix milliseconds (UTC, proleptic Gregorian; the
/// milliseconds are dropped).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    //! A dropped or misread expiry serves a dead token as valid, or never refreshes a live
    //! one: every shape below must be read as the program that wrote it meant it.
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000_000;

    fn read(v: Value, how: Reading) -> Result<Option<u64>, String> {
        let Value::Object(mut obj) = v else {
            unreachable!("the tests pass objects")
        };
        take_expiry(&mut obj, how)
    }
    fn kept(v: Value) -> Result<Option<u64>, String> {
        read(v, Reading::kept(NOW))
    }

    #[test]
    fn rfc3339_round_trips_and_reads_offsets_and_fractions() {
        for ms in [0, 951_782_400_000, 1_700_000_000_000, 4_102_444_799_000] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms as i64));
        }
        assert_eq!(
            parse_rfc3339("2020-01-01T01:00:00.123456789+01:00"),
            Some(1_577_836_800_123)
        );
        assert_eq!(
            parse_rfc3339("2020-01-01t00:00:00.5z"),
            Some(1_577_836_800_500)
        );
        assert_eq!(
            parse_rfc3339("2019-12-31T19:00:00-05:00"),
            Some(1_577_836_800_000)
        );
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), Some(GO_ZERO_TIME));
        for bad in [
            "2020-02-30T00:00:00Z",
            "2020-01-01T00:00:00",
            "2020-01-01",
            "2020-01-01T24:00:00Z",
            "2020-01-01T00:00:00.Z",
            "2020-01-01T00:00:00+0100",
            "2020-01-01T00:00:00Zjunk",
            "２020-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(rfc3339(4_102_444_799_000), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn the_issue_table_is_honoured() {
        // Go's oauth2.Token: `expiry` was dropped.
        assert_eq!(
            kept(json!({"expiry": "2020-01-01T00:00:00Z"})),
            Ok(Some(1_577_836_800_000))
        );
        // JavaScript milliseconds: was read as seconds (year 131971).
        assert_eq!(
            kept(json!({"expires_at": 4_102_444_800_000u64})),
            Ok(Some(4_102_444_800_000))
        );
        // RFC 3339 `expires_at`: was refused.
        assert_eq!(
            kept(json!({"expires_at": "2099-01-01T00:00:00Z"})),
            Ok(Some(4_070_908_800_000))
        );
    }

    #[test]
    fn every_form_of_every_field() {
        let at = 1_900_000_000_000u64;
        for v in [
            json!({"expires_at": 1_900_000_000u64}),
            json!({"expires_at": 1_900_000_000.0}),
            json!({"expires_at": "1900000000"}),
            json!({"expires_at": at}),
            json!({"expires_at": "2030-03-17T17:46:40Z"}),
            json!({"expiry": "2030-03-17T18:46:40+01:00"}),
            json!({"expiresAt": at}),
            json!({"expires_on": "1900000000"}),
            json!({"expires_on": 1_900_000_000u64}),
        ] {
            assert_eq!(kept(v.clone()), Ok(Some(at)), "{v}");
        }
        assert_eq!(
            kept(json!({"expires_at": 1_900_000_000.75})),
            Ok(Some(at + 750))
        );
        // `expires_in` counts from receipt, less a second for the server's rounding.
        assert_eq!(kept(json!({"expires_in": 3600})), Ok(Some(NOW + 3_599_000)));
        assert_eq!(kept(json!({"expires_in": "60"})), Ok(Some(NOW + 59_000)));
        assert_eq!(kept(json!({"expires_in": 1})), Ok(Some(NOW + 500)));
        // Counted from when the file says the token was received, when it says.
        assert_eq!(
            read(json!({"expires_in": 60}), Reading::kept(1000)),
            Ok(Some(60_000))
        );
        // Go's zero time means no expiry; so does no field at all.
        assert_eq!(kept(json!({"expiry": "0001-01-01T00:00:00Z"})), Ok(None));
        assert_eq!(kept(json!({"access_token": "a"})), Ok(None));
        assert_eq!(kept(json!({"expires_at": null})), Ok(None));
        // An epoch expiry is expired, not absent.
        assert_eq!(kept(json!({"expires_at": 0})), Ok(Some(0)));
    }

    #[test]
    fn fields_taken_and_fields_kept() {
        let Value::Object(mut obj) = json!({
            "expiry": "2030-01-01T00:00:00Z", "expires_in": 99999999,
            "refresh_expires_in": 1800, "id_token": "x"
        }) else {
            unreachable!()
        };
        take_expiry(&mut obj, Reading::kept(NOW)).unwrap();
        let mut keys: Vec<_> = obj.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["id_token", "refresh_expires_in"]);
    }

    #[test]
    fn disagreement_and_the_unknown_are_refused_when_kept() {
        let e = kept(json!({"expiry": "2020-01-01T00:00:00Z", "expires_at": 4_102_444_800u64}))
            .unwrap_err();
        assert_eq!(
            e,
            "`expiry` (2020-01-01T00:00:00Z) and `expires_at` (2100-01-01T00:00:00Z) disagree; \
             keep the one that is right and remove the other"
        );
        // Seconds against milliseconds of the same instant agree.
        assert_eq!(
            kept(json!({"expires_at": 1_900_000_000u64, "expiresAt": 1_900_000_000_999u64})),
            Ok(Some(1_900_000_000_000))
        );
        // A saved token's absolute expiry may be sooner than `expires_in` from now (it was
        // received earlier), and then it is what counts; later is a contradiction.
        assert_eq!(
            kept(json!({"expires_in": 3600, "expires_at": (NOW / 1000) + 60})),
            Ok(Some(NOW + 60_000))
        );
        let e = kept(json!({"expires_in": 60, "expires_at": (NOW / 1000) + 3600})).unwrap_err();
        assert!(e.contains("later than `expires_in` allows"), "{e}");
        // Not understood: named, with the accepted forms.
        for (v, name) in [
            (json!({"expires": 1_900_000_000u64}), "`expires`"),
            (json!({"ExpiresOn": "x"}), "`ExpiresOn`"),
            (json!({"expirationTime": 1}), "`expirationTime`"),
        ] {
            let e = kept(v).unwrap_err();
            assert!(e.contains(name) && e.contains("RFC 3339"), "{e}");
        }
        for (v, name) in [
            (json!({"expiry": "tomorrow"}), "`expiry`"),
            (json!({"expires_at": -1}), "`expires_at`"),
            (json!({"expires_at": true}), "`expires_at`"),
            (json!({"expires_at": "1e3"}), "`expires_at`"),
            // Microseconds.
            (
                json!({"expiresAt": 1_900_000_000_000_000u64}),
                "`expiresAt`",
            ),
            (json!({"expires_in": -5}), "`expires_in`"),
            (json!({"expires_in": 1e30}), "`expires_in`"),
        ] {
            let e = kept(v.clone()).unwrap_err();
            assert!(e.contains(name), "{v}: {e}");
        }
    }

    #[test]
    fn a_reply_is_read_leniently() {
        // Unknown lifetimes stay with the reply; of fields that disagree the earliest wins.
        let reply = json!({"expires_in": 3600, "expires_at": (NOW / 1000) + 7200, "x_expiry": 5});
        assert_eq!(read(reply, Reading::reply(NOW)), Ok(Some(NOW + 3_599_000)));
        // Broken values are still refused.
        assert!(read(json!({"expires_at": "soon"}), Reading::reply(NOW)).is_err());
    }
}
