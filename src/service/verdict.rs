//! The verdict: is this key good (for this path and access, from this address) right now?
//! One code for every caller of `credential::authenticate`: the families' credentials,
//! verify, forward-auth and login all read it, and it alone decides what counts as a failed
//! authentication.
//!
//! The order of the checks is part of the contract: unknown → revoked/deleted → disabled →
//! expired → IP allowlist → grant, here; then rate limit → credits, which need state and
//! are applied by `credential` to a verdict that came out `Valid`.

use std::net::IpAddr;

use serde::Serialize;

use crate::domain::grants::{Access, GrantPath};
use crate::domain::model::{KeyAuth, Standing};
use crate::domain::timestamp::Timestamp;

/// The answer to a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    /// Usable, and (if asked) a grant covers the path and access.
    Valid,
    /// No such key, or not a well-formed key at all.
    NotFound,
    /// Revoked by id.
    Revoked,
    /// Deleted (by value or by the clients family).
    Deleted,
    /// Turned off (by `PATCH … {"enabled": false}`) until enabled again.
    Disabled,
    /// Past its expiry.
    Expired,
    /// Usable, but no grant covers the path and access asked about.
    Forbidden,
    /// Used from an address outside the key's IP allowlist (or, at verify, with no `ip`).
    IpNotAllowed,
    /// The caller has failed too often, or the key is over its rate limit; try later.
    RateLimited,
    /// The key has no credits left for this cost.
    UsageExceeded,
}

impl Code {
    /// Every code, in the order the OpenAPI document lists them. The match makes a new variant
    /// a compile error here until it is listed.
    pub const ALL: [Code; 10] = [
        Code::Valid,
        Code::NotFound,
        Code::Revoked,
        Code::Deleted,
        Code::Disabled,
        Code::Expired,
        Code::IpNotAllowed,
        Code::Forbidden,
        Code::RateLimited,
        Code::UsageExceeded,
    ];

    /// True for the outcomes that spend the caller's failed-authentication budget: the
    /// credential itself is bad, or is used from where it may not be (a stolen key tried
    /// from elsewhere). A good key asking about a path it has no grant for (`Forbidden`), or
    /// over its own limits, is not a failed authentication, and spends nothing.
    pub fn is_failure(self) -> bool {
        match self {
            Code::NotFound | Code::Revoked | Code::Deleted | Code::Disabled | Code::Expired | Code::IpNotAllowed => {
                true
            }
            Code::Valid | Code::Forbidden | Code::RateLimited | Code::UsageExceeded => false,
        }
    }
}

/// What the caller wants to do with the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// Only that the key is usable.
    Usable,
    /// That a grant covers this path with this access.
    On {
        /// The path.
        path: GrantPath,
        /// The access.
        access: Access,
    },
    /// Something no grant can cover: a path that does not normalise cleanly.
    Unmatchable,
}

/// The code for `record` asked about `need` at `now`, used from `ip` (which matters only to
/// a key with an allowlist; `None`: not known, which such a key refuses).
pub fn judge(record: Option<&KeyAuth>, need: &Need, ip: Option<IpAddr>, now: Timestamp) -> Code {
    let Some(k) = record else { return Code::NotFound };
    match k.standing(now) {
        Standing::Revoked => return Code::Revoked,
        Standing::Deleted => return Code::Deleted,
        Standing::Disabled => return Code::Disabled,
        Standing::Expired => return Code::Expired,
        Standing::Usable => {}
    }
    if k.limits().is_some_and(|l| !l.admits_ip(ip)) {
        return Code::IpNotAllowed;
    }
    match need {
        Need::Usable => Code::Valid,
        Need::On { path, access } if k.grants.allows(path, *access) => Code::Valid,
        Need::On { .. } | Need::Unmatchable => Code::Forbidden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grants::Grants;
    use crate::domain::limits::{parse_allowlist, Limits};
    use crate::domain::model::{Extras, KeyId, Status};

    fn record(status: Status, expires_at: Option<i64>) -> KeyAuth {
        KeyAuth {
            id: KeyId(1),
            uuid: uuid::Uuid::nil(),
            grants: std::sync::Arc::new(Grants::single(GrantPath::parse("/data").unwrap(), Access::Read)),
            status,
            enabled: true,
            expires_at: expires_at.map(Timestamp::from_millis),
            application_id: None,
            application_uuid: None,
            extras: None,
        }
    }

    #[test]
    fn codes_table() {
        let now = Timestamp::from_millis(1000);
        let on = |p: &str, access| Need::On { path: GrantPath::parse(p).unwrap(), access };
        let (read_data, write_data, read_other) =
            (on("/data/x", Access::Read), on("/data/x", Access::Write), on("/datax", Access::Read));
        let rows: Vec<(Option<KeyAuth>, &Need, Code)> = vec![
            (None, &Need::Usable, Code::NotFound),
            (Some(record(Status::Active, None)), &Need::Usable, Code::Valid),
            (Some(record(Status::Active, None)), &read_data, Code::Valid),
            (Some(record(Status::Active, None)), &write_data, Code::Forbidden),
            (Some(record(Status::Active, None)), &read_other, Code::Forbidden),
            (Some(record(Status::Active, None)), &Need::Unmatchable, Code::Forbidden),
            (Some(record(Status::Active, Some(1000))), &Need::Usable, Code::Expired),
            (Some(record(Status::Active, Some(1000))), &Need::Unmatchable, Code::Expired),
            (Some(record(Status::Active, Some(1001))), &Need::Usable, Code::Valid),
            (Some(record(Status::Revoked, None)), &Need::Usable, Code::Revoked),
            (Some(record(Status::Deleted, Some(1))), &Need::Usable, Code::Deleted),
            (Some(KeyAuth { enabled: false, ..record(Status::Active, None) }), &read_data, Code::Disabled),
            (Some(KeyAuth { enabled: false, ..record(Status::Active, Some(1)) }), &Need::Usable, Code::Disabled),
            (Some(KeyAuth { enabled: false, ..record(Status::Revoked, None) }), &Need::Usable, Code::Revoked),
        ];
        for (rec, need, want) in rows {
            assert_eq!(judge(rec.as_ref(), need, None, now), want, "{rec:?} {need:?}");
        }
    }

    #[test]
    fn the_allowlist_comes_after_expiry_and_before_the_grant() {
        let now = Timestamp::from_millis(1000);
        let listed = |status, expires_at: Option<i64>, enabled| KeyAuth {
            enabled,
            extras: Extras::of(
                None,
                None,
                Limits { allowed_ips: Some(parse_allowlist(&["10.0.0.0/8".into()]).unwrap()), ..Limits::default() },
            ),
            ..record(status, expires_at)
        };
        let inside: Option<IpAddr> = Some("10.1.2.3".parse().unwrap());
        let outside: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let write_data = Need::On { path: GrantPath::parse("/data").unwrap(), access: Access::Write };
        let rows = [
            (listed(Status::Active, None, true), &Need::Usable, inside, Code::Valid),
            (listed(Status::Active, None, true), &Need::Usable, outside, Code::IpNotAllowed),
            (listed(Status::Active, None, true), &Need::Usable, None, Code::IpNotAllowed),
            // An address outside the list is refused before the path is looked at...
            (listed(Status::Active, None, true), &write_data, outside, Code::IpNotAllowed),
            (listed(Status::Active, None, true), &write_data, inside, Code::Forbidden),
            // ...and after everything that says the key itself is no good.
            (listed(Status::Revoked, None, true), &Need::Usable, outside, Code::Revoked),
            (listed(Status::Deleted, None, true), &Need::Usable, outside, Code::Deleted),
            (listed(Status::Active, None, false), &Need::Usable, outside, Code::Disabled),
            (listed(Status::Active, Some(10), true), &Need::Usable, outside, Code::Expired),
        ];
        for (rec, need, ip, want) in rows {
            assert_eq!(judge(Some(&rec), need, ip, now), want, "{rec:?} {need:?} {ip:?}");
        }
        // A key without an allowlist ignores the address, known or not.
        assert_eq!(judge(Some(&record(Status::Active, None)), &Need::Usable, outside, now), Code::Valid);
    }

    #[test]
    fn only_a_bad_credential_is_a_failure() {
        let failures: Vec<Code> = Code::ALL.into_iter().filter(|c| c.is_failure()).collect();
        assert_eq!(
            failures,
            [Code::NotFound, Code::Revoked, Code::Deleted, Code::Disabled, Code::Expired, Code::IpNotAllowed]
        );
    }
}
