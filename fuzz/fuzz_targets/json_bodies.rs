//! Arbitrary bytes through serde_json as the API reads them, then into grant lists:
//! `serde_json::from_slice::<Value>`, `from_value::<Vec<GrantBody>>` (top level, or the
//! `grants` field of an object), `Grants::from_bodies`; plus the error path the API takes
//! (`redact` over the serde message). Nothing may panic; accepted grants are normalised,
//! bounded, and round-trip through their JSON shape.
//! (Whole endpoint bodies need a fuzzing hook in src: their structs are private to `api`.)
#![no_main]

mod common;

use apikeyd::domain::grants::{GrantBody, Grants, MAX_GRANTS};
use apikeyd::domain::key_format::redact;
use apikeyd::domain::timestamp::Timestamp;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check_grants(bodies: Vec<GrantBody>) {
    let Ok(grants) = Grants::from_bodies(&bodies) else { return };
    let n = grants.iter().count();
    assert!((1..=MAX_GRANTS).contains(&n) && n <= bodies.len());
    for g in grants.iter() {
        common::assert_normalised(&g.path);
    }
    let json = serde_json::to_vec(&grants.to_bodies()).unwrap();
    let back: Vec<GrantBody> = serde_json::from_slice(&json).unwrap();
    assert_eq!(Grants::from_bodies(&back).as_ref(), Ok(&grants));
    assert!(grants.within(&grants) && grants.within(&Grants::root()));
}

fuzz_target!(|data: &[u8]| {
    match serde_json::from_slice::<Vec<GrantBody>>(data) {
        Ok(bodies) => check_grants(bodies),
        Err(e) => {
            let _ = redact(&e.to_string());
        }
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    if let Ok(bodies) = serde_json::from_value::<Vec<GrantBody>>(value.clone()) {
        check_grants(bodies);
    }
    if let Some(obj) = value.as_object() {
        if let Some(list) = obj.get("grants") {
            if let Ok(bodies) = serde_json::from_value::<Vec<GrantBody>>(list.clone()) {
                check_grants(bodies);
            }
        }
        for key in ["expires_at", "expiration_date"] {
            if let Some(s) = obj.get(key).and_then(Value::as_str) {
                let _ = Timestamp::parse_rfc3339(s);
            }
        }
    }
});
