//! The verdict: is this key good (for this path and access) right now? One code for every
//! caller of `credential::authenticate`: the families' credentials, verify, forward-auth and
//! login all read it, and it alone decides what counts as a failed authentication.

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
    /// The caller has failed too often; try later.
    RateLimited,
}

impl Code {
    /// Every code, in the order the OpenAPI document lists them. The match makes a new variant
    /// a compile error here until it is listed.
    pub const ALL: [Code; 8] = [
        Code::Valid,
        Code::NotFound,
        Code::Revoked,
        Code::Deleted,
        Code::Disabled,
        Code::Expired,
        Code::Forbidden,
        Code::RateLimited,
    ];

    /// True for the outcomes that spend the caller's failed-authentication budget: the
    /// credential itself is bad. A good key asking about a path it has no grant for
    /// (`Forbidden`) is not a failed authentication, and spends nothing.
    pub fn is_failure(self) -> bool {
        match self {
            Code::NotFound | Code::Revoked | Code::Deleted | Code::Disabled | Code::Expired => true,
            Code::Valid | Code::Forbidden | Code::RateLimited => false,
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

/// The code for `record` asked about `need` at `now`.
pub fn judge(record: Option<&KeyAuth>, need: &Need, now: Timestamp) -> Code {
    let Some(k) = record else { return Code::NotFound };
    match k.standing(now) {
        Standing::Revoked => return Code::Revoked,
        Standing::Deleted => return Code::Deleted,
        Standing::Disabled => return Code::Disabled,
        Standing::Expired => return Code::Expired,
        Standing::Usable => {}
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
    use crate::domain::model::{KeyId, Status};

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
            labels: None,
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
            assert_eq!(judge(rec.as_ref(), need, now), want, "{rec:?} {need:?}");
        }
    }

    #[test]
    fn only_a_bad_credential_is_a_failure() {
        let failures: Vec<Code> = Code::ALL.into_iter().filter(|c| c.is_failure()).collect();
        assert_eq!(failures, [Code::NotFound, Code::Revoked, Code::Deleted, Code::Disabled, Code::Expired]);
    }
}
