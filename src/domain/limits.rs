//! What a key may spend: a rate limit (at most N accepted verdicts in any window of S
//! seconds), usage credits with an optional refill at UTC day or month boundaries, and an IP
//! allowlist of CIDRs. Pure code: the shapes, their parsing, the CIDR match and the refill
//! calendar arithmetic. Enforcement (and its state) is `service::quota`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::{MAX_ALLOWED_IPS, MAX_CREDITS, MAX_RATE_LIMIT, MAX_RATE_WINDOW_SECONDS};
use crate::domain::timestamp::Timestamp;
use crate::domain::whole::whole;

/// At most `limit` accepted verdicts in any window of `window_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// 1 to 1,000,000,000 ([`MAX_RATE_LIMIT`]; the document's bounds are checked against
    /// the constants by a test).
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "whole")]
    pub limit: u64,
    /// 1 to 86,400 ([`MAX_RATE_WINDOW_SECONDS`]).
    #[schema(minimum = 1, maximum = 86_400)]
    #[serde(deserialize_with = "whole")]
    pub window_seconds: u64,
}

/// How often credits are set back to an amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefillInterval {
    /// At every 00:00 UTC.
    Daily,
    /// At 00:00 UTC on the first of every month.
    Monthly,
}

/// Credits are set back to `amount` at each `interval` boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refill {
    /// What `remaining` becomes at each boundary (at most [`MAX_CREDITS`]).
    #[schema(minimum = 0, maximum = 1_000_000_000_000u64)]
    #[serde(deserialize_with = "whole")]
    pub amount: u64,
    /// Which boundaries.
    pub interval: RefillInterval,
}

/// Usage credits as set: how many remain (at the time they were set) and the refill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credits {
    /// Credits left; each accepted verdict spends its cost (1 unless verify says otherwise);
    /// at most [`MAX_CREDITS`].
    #[schema(minimum = 0, maximum = 1_000_000_000_000u64)]
    #[serde(deserialize_with = "whole")]
    pub remaining: u64,
    /// Refill, if any.
    pub refill: Option<Refill>,
}

/// An IPv4 or IPv6 network, `a.b.c.d/n` or `x::y/n` (a bare address is its /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Occurs when a limit is out of its range or a CIDR does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    /// `rate_limit` out of range.
    #[error("rate_limit.limit must be 1 to {MAX_RATE_LIMIT} and window_seconds 1 to {MAX_RATE_WINDOW_SECONDS}")]
    Rate,
    /// `credits` out of range.
    #[error("credits and their refill amount must be at most {MAX_CREDITS}")]
    Credits,
    /// None, or too many CIDRs.
    #[error("allowed_ips must hold 1 to {MAX_ALLOWED_IPS} networks (null: no allowlist)")]
    IpCount,
    /// A CIDR that does not parse.
    #[error("allowed_ips entry {0}: expected an IPv4 or IPv6 address or CIDR such as 203.0.113.0/24")]
    Cidr(usize),
}

impl RateLimit {
    /// Checks the ranges.
    pub fn check(self) -> Result<RateLimit, LimitError> {
        let ok =
            (1..=MAX_RATE_LIMIT).contains(&self.limit) && (1..=MAX_RATE_WINDOW_SECONDS).contains(&self.window_seconds);
        ok.then_some(self).ok_or(LimitError::Rate)
    }
}

impl Credits {
    /// Checks the ranges.
    pub fn check(self) -> Result<Credits, LimitError> {
        let ok = self.remaining <= MAX_CREDITS && self.refill.is_none_or(|r| r.amount <= MAX_CREDITS);
        ok.then_some(self).ok_or(LimitError::Credits)
    }
}

impl Cidr {
    /// Parses `addr` or `addr/prefix`; host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
        };
        if prefix > max {
            return None;
        }
        // An IPv4-mapped network (`::ffff:10.0.0.0/104`) is the IPv4 network it maps.
        if let (IpAddr::V6(v6), true) = (network, prefix >= 96) {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return Some(Cidr { network: mask(IpAddr::V4(v4), prefix - 96), prefix: prefix - 96 });
            }
        }
        Some(Cidr { network: mask(network, prefix), prefix })
    }

    /// True when `ip` is in this network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
    /// matches as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let within = |ip: IpAddr| ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network;
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        within(ip) || mapped.is_some_and(within)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// Parses an allowlist: 1 to [`MAX_ALLOWED_IPS`] networks (an empty list would let the key
/// be used from nowhere, which is what revoking it is for).
pub fn parse_allowlist(entries: &[String]) -> Result<Vec<Cidr>, LimitError> {
    if entries.is_empty() || entries.len() > MAX_ALLOWED_IPS {
        return Err(LimitError::IpCount);
    }
    entries.iter().enumerate().map(|(i, e)| Cidr::parse(e.trim()).ok_or(LimitError::Cidr(i))).collect()
}

impl LimitError {
    /// The request field it is about.
    pub fn field(&self) -> &'static str {
        match self {
            LimitError::Rate => "rate_limit",
            LimitError::Credits => "credits",
            LimitError::IpCount | LimitError::Cidr(_) => "allowed_ips",
        }
    }
}

/// A key's limits as they are set (create, PATCH) and shown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitSettings {
    /// Its rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Its credits.
    pub credits: Option<Credits>,
    /// Its IP allowlist.
    pub allowed_ips: Option<Vec<Cidr>>,
}

impl LimitSettings {
    /// Checks limits as a request gives them.
    pub fn parse(
        rate_limit: Option<RateLimit>,
        credits: Option<Credits>,
        allowed_ips: Option<&[String]>,
    ) -> Result<LimitSettings, LimitError> {
        Ok(LimitSettings {
            rate_limit: rate_limit.map(RateLimit::check).transpose()?,
            credits: credits.map(Credits::check).transpose()?,
            allowed_ips: allowed_ips.map(parse_allowlist).transpose()?,
        })
    }
}

/// A key's credits as the verdict needs them: their generation and refill (the count itself
/// lives in the database and in `service::quota`'s leases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditPolicy {
    /// Bumped each time the credits are set (create, PATCH): voids any lease of the old ones.
    pub version: u64,
    /// The refill, if any.
    pub refill: Option<Refill>,
}

/// A key's limits: what the index carries for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Its rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Its credits.
    pub credits: Option<CreditPolicy>,
    /// Its IP allowlist.
    pub allowed_ips: Option<Vec<Cidr>>,
}

impl Limits {
    /// True when the key has no limit at all.
    pub fn is_empty(&self) -> bool {
        self.rate_limit.is_none() && self.credits.is_none() && self.allowed_ips.is_none()
    }

    /// Does the allowlist (if any) let `ip` through? No allowlist: yes; an allowlist and no
    /// address to check: no.
    pub fn admits_ip(&self, ip: Option<IpAddr>) -> bool {
        match &self.allowed_ips {
            None => true,
            Some(list) => ip.is_some_and(|ip| list.iter().any(|c| c.contains(ip))),
        }
    }
}

/// The start (00:00 UTC) of the refill period holding `at`.
pub fn period_start(interval: RefillInterval, at: Timestamp) -> Timestamp {
    let dt = datetime(at);
    let day = dt.date();
    let start = match interval {
        RefillInterval::Daily => day,
        RefillInterval::Monthly => day.replace_day(1).unwrap_or(day),
    };
    from_datetime(start.midnight().assume_utc())
}

/// The start of the refill period after the one holding `at`.
pub fn next_period_start(interval: RefillInterval, at: Timestamp) -> Timestamp {
    let start = datetime(period_start(interval, at)).date();
    let next = match interval {
        RefillInterval::Daily => start.next_day(),
        RefillInterval::Monthly => {
            let (year, month) = if start.month() == time::Month::December {
                (start.year() + 1, time::Month::January)
            } else {
                (start.year(), start.month().next())
            };
            time::Date::from_calendar_date(year, month, 1).ok()
        }
    };
    next.map_or(Timestamp::from_millis(i64::MAX), |d| from_datetime(d.midnight().assume_utc()))
}

fn datetime(at: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.millis()) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn from_datetime(dt: OffsetDateTime) -> Timestamp {
    Timestamp::from_millis(i64::try_from(dt.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn cidr_table() {
        let rows = [
            ("203.0.113.0/24", "203.0.113.77", true),
            ("203.0.113.0/24", "203.0.114.1", false),
            ("10.1.2.3/8", "10.200.0.1", true),
            ("0.0.0.0/0", "198.51.100.1", true),
            ("198.51.100.7", "198.51.100.7", true),
            ("198.51.100.7", "198.51.100.8", false),
            ("2001:db8::/32", "2001:db8:1::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "::1", true),
            ("203.0.113.0/24", "::ffff:203.0.113.9", true),
            ("203.0.113.0/24", "2001:db8::1", false),
            ("2001:db8::/32", "203.0.113.1", false),
        ];
        for (cidr, ip, want) in rows {
            assert_eq!(Cidr::parse(cidr).unwrap().contains(ip.parse().unwrap()), want, "{cidr} {ip}");
        }
        for bad in
            ["", "10.0.0.0/33", "::/129", "10.0.0/8", "10.0.0.0/", "10.0.0.0/-1", "x", "10.0.0.0/08x", "10.0.0.0/8/8"]
        {
            assert_eq!(Cidr::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Cidr::parse("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        // Found by the limits fuzz target: a mapped network listed as such matched nothing.
        let mapped = Cidr::parse("::ffff:10.0.0.1").unwrap();
        assert_eq!(mapped.to_string(), "10.0.0.1/32");
        assert!(mapped.contains("10.0.0.1".parse().unwrap()) && mapped.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert_eq!(Cidr::parse("::ffff:10.0.0.0/104").unwrap().to_string(), "10.0.0.0/8");
        // Below /96 it stays an IPv6 network, and still holds the mapped addresses it covers.
        let wide = Cidr::parse("::ffff:0:0/95").unwrap();
        assert!(wide.contains("::ffff:10.0.0.1".parse().unwrap()) && !wide.contains("10.0.0.1".parse().unwrap()));
        let too_many: Vec<String> = (0..=MAX_ALLOWED_IPS).map(|i| format!("10.0.{i}.0/24")).collect();
        assert_eq!(parse_allowlist(&too_many), Err(LimitError::IpCount));
        assert_eq!(parse_allowlist(&[]), Err(LimitError::IpCount));
        assert_eq!(parse_allowlist(&too_many[..MAX_ALLOWED_IPS]).map(|l| l.len()), Ok(MAX_ALLOWED_IPS));
        assert_eq!(parse_allowlist(&["10.0.0.0/8".into(), "nope".into()]), Err(LimitError::Cidr(1)));
    }

    #[test]
    fn ranges_are_checked() {
        assert!(RateLimit { limit: 1, window_seconds: 1 }.check().is_ok());
        assert!(RateLimit { limit: MAX_RATE_LIMIT, window_seconds: MAX_RATE_WINDOW_SECONDS }.check().is_ok());
        for bad in [(0, 1), (1, 0), (MAX_RATE_LIMIT + 1, 1), (1, MAX_RATE_WINDOW_SECONDS + 1)] {
            assert!(RateLimit { limit: bad.0, window_seconds: bad.1 }.check().is_err(), "{bad:?}");
        }
        assert!(Credits { remaining: MAX_CREDITS + 1, refill: None }.check().is_err());
    }

    #[test]
    fn refill_periods_follow_the_utc_calendar() {
        use RefillInterval::{Daily, Monthly};
        let rows = [
            (Daily, "2026-12-02T13:45:00Z", "2026-12-02T00:00:00Z", "2026-12-03T00:00:00Z"),
            (Daily, "2026-12-31T23:59:59.999Z", "2026-12-31T00:00:00Z", "2027-01-01T00:00:00Z"),
            (Daily, "2028-02-28T12:00:00Z", "2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z"),
            (Monthly, "2026-12-15T08:00:00Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            (Monthly, "2028-02-29T23:00:00Z", "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"),
            (Monthly, "2027-02-28T23:00:00Z", "2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z"),
            (Monthly, "2026-01-31T00:00:00Z", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
            // An offset is only notation: the boundary is UTC's.
            (Daily, "2026-12-02T01:00:00+05:00", "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"),
        ];
        for (interval, at, start, next) in rows {
            assert_eq!(period_start(interval, ts(at)), ts(start), "{interval:?} {at}");
            assert_eq!(next_period_start(interval, ts(at)), ts(next), "{interval:?} {at}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// For any instant from 1970 to 2200: its period starts at 00:00 UTC (of the 1st, for
        /// monthly) at or before it, the next starts after it, exactly one day (or one month,
        /// 28 to 31 days) later, and the instant just before the next start is in the same
        /// period while the next start itself is not.
        #[test]
        fn periods_tile_the_utc_calendar(ms in 0i64..7_258_118_400_000, monthly: bool) {
            let interval = if monthly { RefillInterval::Monthly } else { RefillInterval::Daily };
            let at = Timestamp::from_millis(ms);
            let (start, next) = (period_start(interval, at), next_period_start(interval, at));
            proptest::prop_assert!(start <= at && at < next);
            let (s, n) = (datetime(start), datetime(next));
            proptest::prop_assert_eq!(s.time(), time::Time::MIDNIGHT);
            proptest::prop_assert_eq!(n.time(), time::Time::MIDNIGHT);
            let days = (next.millis() - start.millis()) / 86_400_000;
            if monthly {
                proptest::prop_assert_eq!(s.day(), 1);
                proptest::prop_assert_eq!(n.day(), 1);
                proptest::prop_assert_eq!(i64::from(time::util::days_in_month(s.month(), s.year())), days);
            } else {
                proptest::prop_assert_eq!(days, 1);
            }
            let last = Timestamp::from_millis(next.millis() - 1);
            proptest::prop_assert_eq!(period_start(interval, last), start);
            proptest::prop_assert_eq!(period_start(interval, next), next);
        }
    }
}
