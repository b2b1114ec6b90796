//! Reading one tenant of a blob store without decoding the others.
//!
//! A file store is one sealed JSON body holding every tenant. A call about one tenant
//! (`token`, `put`, a refresh) used to decode every tenant into an [`Entry`] (a `String` per
//! field) and, when it wrote, encode them all again: on a store of 32 tenants that was most
//! of the component's time per call (BENCHMARKS.md, "Contention, taken apart"). A scoped
//! read now decodes only the tenants in scope and keeps each other tenant as the exact JSON
//! text it was stored as ([`Unread`]), which a write puts back byte for byte.
//!
//! This is the blob form of what a `records` platform does with one record per tenant
//! (`store::View::Records`): the core's operations already work on a body that holds only
//! the tenants they asked for. An unread tenant is not checked when it is carried over; it
//! is checked, as before, by any call that reads it.

use crate::model::{Body, Entry};
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// The tenants a scoped read of a blob store left undecoded: each one's JSON as stored.
#[derive(Clone, Default)]
pub struct Unread(BTreeMap<String, Box<RawValue>>);

impl Unread {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Names only: the JSON holds tokens.
impl std::fmt::Debug for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Parse a store body, decoding into entries only the tenants `wanted` accepts; the others
/// are kept as read. With a `wanted` that accepts every tenant, this is exactly
/// `serde_json::from_slice::<Body>` (a test checks it on every field).
pub fn parse(
    plaintext: &[u8],
    wanted: impl Fn(&str) -> bool,
) -> Result<(Body, Unread), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(plaintext);
    let parsed = Scoped(wanted).deserialize(&mut de)?;
    de.end()?;
    Ok(parsed)
}

/// `body` as the store's JSON with `unread` put back among its tenants. For a body this build
/// wrote, byte for byte what `serde_json::to_vec` writes for the body that holds them all
/// decoded (a test checks it); a tenant another version wrote stays as it was written.
pub fn to_json(body: &Body, unread: &Unread) -> Vec<u8> {
    if unread.is_empty() {
        return serde_json::to_vec(body).expect("a Body always serialises");
    }
    serde_json::to_vec(&WithUnread { body, unread }).expect("a Body always serialises")
}

struct Scoped<F>(F);

impl<'de, F: Fn(&str) -> bool> DeserializeSeed<'de> for Scoped<F> {
    type Value = (Body, Unread);

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: Fn(&str) -> bool> Visitor<'de> for Scoped<F> {
    type Value = (Body, Unread);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a store body")
    }

    // The fields and their defaults are `Body`'s (model.rs); `same_as_the_derive` below
    // fails if the two ever read a body differently.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut body = Body::default();
        let mut unread = BTreeMap::new();
        let (mut generation, mut tenants) = (false, false);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "generation" if !generation => {
                    body.generation = map.next_value()?;
                    generation = true;
                }
                "tenants" if !tenants => {
                    let raw: BTreeMap<String, Box<RawValue>> = map.next_value()?;
                    for (name, json) in raw {
                        if (self.0)(&name) {
                            let entry: Entry = serde_json::from_slice(json.get().as_bytes())
                                .map_err(de::Error::custom)?;
                            body.tenants.insert(name, entry);
                        } else {
                            unread.insert(name, json);
                        }
                    }
                    tenants = true;
                }
                "generation" | "tenants" => {
                    return Err(de::Error::custom(format_args!("duplicate field `{key}`")))
                }
                "pending_logins" => body.pending_logins = map.next_value()?,
                "tenant_records" => body.tenant_records = map.next_value()?,
                _ => {
                    let value = map.next_value()?;
                    body.unknown.insert(key, value);
                }
            }
        }
        if !generation {
            return Err(de::Error::missing_field("generation"));
        }
        if !tenants {
            return Err(de::Error::missing_field("tenants"));
        }
        Ok((body, Unread(unread)))
    }
}

/// `Body`'s serialisation (the derive's field order and skips) with the unread tenants
/// merged into `tenants` in name order.
struct WithUnread<'a> {
    body: &'a Body,
    unread: &'a Unread,
}

impl Serialize for WithUnread<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = self.body;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("generation", &b.generation)?;
        m.serialize_entry("tenants", &Tenants(b, self.unread))?;
        if !b.pending_logins.is_empty() {
            m.serialize_entry("pending_logins", &b.pending_logins)?;
        }
        if b.tenant_records {
            m.serialize_entry("tenant_records", &b.tenant_records)?;
        }
        for (k, v) in &b.unknown {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct Tenants<'a>(&'a Body, &'a Unread);

impl Serialize for Tenants<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (decoded, unread) = (&self.0.tenants, &self.1 .0);
        let mut m = s.serialize_map(Some(decoded.len() + unread.len()))?;
        let mut a = decoded.iter().peekable();
        let mut b = unread.iter().peekable();
        loop {
            let decoded_first = match (a.peek(), b.peek()) {
                (Some((x, _)), Some((y, _))) => {
                    // A scoped read leaves a tenant either decoded or unread, never both,
                    // and an operation adds or changes only tenants in its scope.
                    assert_ne!(x, y, "a tenant both decoded and unread");
                    x < y
                }
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if decoded_first {
                let (k, v) = a.next().expect("peeked");
                m.serialize_entry(k, v)?;
            } else {
                let (k, v) = b.next().expect("peeked");
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body with every kind of field: decoded and unknown tenant fields, logins, unknown
    /// top-level fields, in an order other than the struct's.
    fn sample() -> Vec<u8> {
        let entry = |i: u32| {
            format!(
                r#"{{"access_token":"a{i}","token_type":"Bearer","expires_at_ms":17{i},"refresh_token":"r{i}","scope":"s","revision":{r},"updated_at_ms":5,"response_extra":{{"id_token":"x"}},"attachments":{{"k":"v"}},"future_field":[1,{{"z":2,"a":1}}]}}"#,
                r = i + 1
            )
        };
        let tenants: Vec<String> = ["zeta", "alpha", "m.id@x", "beta"]
            .iter()
            .enumerate()
            .map(|(i, n)| format!(r#""{n}":{}"#, entry(i as u32)))
            .collect();
        format!(
            r#"{{"future_top":{{"b":1,"a":2}},"tenants":{{{}}},"pending_logins":{{"alpha":{{"version":1,"id":"p1","kind":"device","started_at_ms":1,"expires_at_ms":2,"base_revision":0,"url":"https://idp.example/d","token_endpoint":"https://idp.example/t","client_id":"c"}}}},"generation":41}}"#,
            tenants.join(",")
        )
        .into_bytes()
    }

    #[test]
    fn same_as_the_derive() {
        let bytes = sample();
        let derived: Body = serde_json::from_slice(&bytes).unwrap();
        let (all, none) = parse(&bytes, |_| true).unwrap();
        assert_eq!(all, derived);
        assert!(none.is_empty());
        assert_eq!(to_json(&all, &none), serde_json::to_vec(&derived).unwrap());
    }

    /// What this build writes for [`sample`].
    fn written() -> Vec<u8> {
        serde_json::to_vec(&serde_json::from_slice::<Body>(&sample()).unwrap()).unwrap()
    }

    #[test]
    fn a_scoped_read_writes_back_the_same_bytes() {
        let whole = written();
        for scope in [&["alpha"][..], &["zeta", "beta"], &[]] {
            let (body, unread) = parse(&whole, |n| scope.contains(&n)).unwrap();
            assert_eq!(body.tenants.len(), scope.len());
            assert_eq!(unread.names().count(), 4 - scope.len());
            assert_eq!(body.pending_logins.len(), 1);
            assert_eq!(body.generation, 41);
            assert_eq!(to_json(&body, &unread), whole, "scope {scope:?}");
        }
    }

    /// A tenant stored by another version (here: without the fields this one writes by
    /// default) is carried over as it was stored, and reads back the same.
    #[test]
    fn an_unread_tenant_of_another_version_keeps_its_meaning() {
        let (body, unread) = parse(&sample(), |n| n == "alpha").unwrap();
        let back: Body = serde_json::from_slice(&to_json(&body, &unread)).unwrap();
        assert_eq!(back, serde_json::from_slice::<Body>(&sample()).unwrap());
    }

    #[test]
    fn a_change_in_scope_lands_among_the_unread() {
        let (mut body, unread) = parse(&written(), |n| n == "beta").unwrap();
        body.tenants.remove("beta");
        let mut added = body.tenants.clone();
        let (all, _) = parse(&written(), |_| true).unwrap();
        added.insert("gamma".into(), all.tenants["alpha"].clone());
        body.tenants = added;
        let json = to_json(&body, &unread);
        let back: Body = serde_json::from_slice(&json).unwrap();
        let names: Vec<&str> = back.tenants.keys().map(String::as_str).collect();
        assert_eq!(names, ["alpha", "gamma", "m.id@x", "zeta"]);
        assert_eq!(back.tenants["gamma"], all.tenants["alpha"]);
        assert_eq!(back.tenants["zeta"], all.tenants["zeta"]);
    }

    #[test]
    fn refuses_what_the_derive_refuses() {
        for bad in [
            r#"{"tenants":{}}"#,
            r#"{"generation":1}"#,
            r#"{"generation":1,"tenants":{},"generation":2}"#,
            r#"{"generation":1,"tenants":{"a":{"token_type":"x"}}}"#,
            r#"{"generation":1,"tenants":{}} trailing"#,
            r#"[1]"#,
        ] {
            assert!(
                serde_json::from_slice::<Body>(bad.as_bytes()).is_err(),
                "derive accepts {bad}"
            );
            assert!(parse(bad.as_bytes(), |_| true).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn debug_names_tenants_only() {
        let (_, unread) = parse(&sample(), |_| false).unwrap();
        let shown = format!("{unread:?}");
        assert!(shown.contains("alpha") && !shown.contains("r0") && !shown.contains("a1\""));
    }
}
