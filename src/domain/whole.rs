//! Whole numbers as JSON Schema counts them. The OpenAPI document calls a count an
//! `integer`, which in JSON Schema includes a number written with a zero fraction (`9038.0`
//! is the integer 9038), so a body field that is a count takes either spelling; a fraction, a
//! negative number, a number past 2^53 written as a float, or a string is refused.

use serde::de::{self, Deserializer, Visitor};

struct Whole;

impl Visitor<'_> for Whole {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a whole number, 0 or more")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        // 2^53: past it a float no longer names one whole number.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        if v.is_finite() && v.fract() == 0.0 && (0.0..=EXACT).contains(&v) {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            return Ok(v as u64);
        }
        Err(E::invalid_value(de::Unexpected::Float(v), &self))
    }
}

/// `#[serde(deserialize_with = "whole")]` for a `u64` count.
pub fn whole<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(Whole)
}

/// The same for an optional count (`null` or absent: `None`; use with `#[serde(default)]`).
pub fn optional_whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Optional;
    impl<'de> Visitor<'de> for Optional {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number, 0 or more, or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
            whole(d).map(Some)
        }
    }
    d.deserialize_option(Optional)
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Body {
        #[serde(deserialize_with = "super::whole")]
        n: u64,
        #[serde(default, deserialize_with = "super::optional_whole")]
        m: Option<u64>,
    }

    #[test]
    fn counts_take_either_spelling_of_a_whole_number_only() {
        let ok = |text: &str| serde_json::from_str::<Body>(text).map(|b| (b.n, b.m)).ok();
        assert_eq!(ok(r#"{"n": 9038}"#), Some((9038, None)));
        assert_eq!(ok(r#"{"n": 9038.0, "m": 1.0}"#), Some((9038, Some(1))));
        assert_eq!(ok(r#"{"n": 0, "m": null}"#), Some((0, None)));
        assert_eq!(ok(r#"{"n": 1e3}"#), Some((1000, None)));
        for bad in
            [r#"{"n": 1.5}"#, r#"{"n": -1}"#, r#"{"n": -0.5}"#, r#"{"n": "1"}"#, r#"{"n": 1e300}"#, r#"{"n": null}"#]
        {
            assert_eq!(ok(bad), None, "{bad}");
        }
    }
}
