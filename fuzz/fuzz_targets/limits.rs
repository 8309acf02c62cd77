//! Arbitrary bytes as a key's limits arrive: as a CIDR (`Cidr::parse`, which must agree with
//! the standard library on bare addresses, print a network that parses back to itself and
//! contain its own network address), and as JSON into `RateLimit`, `Credits` and an
//! allowlist, whose range checks must hold for whatever they accept. Nothing may panic.
#![no_main]

use std::net::IpAddr;

use apikeyd::config::{MAX_ALLOWED_IPS, MAX_CREDITS, MAX_RATE_LIMIT, MAX_RATE_WINDOW_SECONDS};
use apikeyd::domain::limits::{parse_allowlist, Cidr, Credits, RateLimit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let parsed = Cidr::parse(text);
        if !text.contains('/') {
            assert_eq!(parsed.is_some(), text.parse::<IpAddr>().is_ok(), "{text:?}");
        }
        if let Some(cidr) = parsed {
            let shown = cidr.to_string();
            assert_eq!(Cidr::parse(&shown), Some(cidr), "{shown}");
            let (network, _) = shown.split_once('/').unwrap();
            assert!(cidr.contains(network.parse().unwrap()), "{shown}");
        }
    }
    if let Ok(rate) = serde_json::from_slice::<RateLimit>(data) {
        if rate.check().is_ok() {
            assert!((1..=MAX_RATE_LIMIT).contains(&rate.limit));
            assert!((1..=MAX_RATE_WINDOW_SECONDS).contains(&rate.window_seconds));
        }
    }
    if let Ok(credits) = serde_json::from_slice::<Credits>(data) {
        if credits.check().is_ok() {
            assert!(credits.remaining <= MAX_CREDITS);
        }
    }
    if let Ok(list) = serde_json::from_slice::<Vec<String>>(data) {
        if let Ok(networks) = parse_allowlist(&list) {
            assert!((1..=MAX_ALLOWED_IPS).contains(&networks.len()) && networks.len() == list.len());
        }
    }
});
