"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

Three of apikeyd's rules cannot be written in an OpenAPI document, so a request the document
calls valid can still be refused with 400, which schemathesis's positive_data_acceptance
check (ST202) reports. These hooks change only generated requests that break one of them,
and only in the way the rule needs; every check stays on, and every other request is sent as
generated:

1. An expiry must lie in the future (`expires_at`, and the shard family's `expiration_date`
   apart from its "never" value 0001-01-01T00:00:00Z). JSON Schema has no "after now": a
   past date is moved to one day from now.
2. A key cannot revoke itself (DELETE /api/v1/keys/{id} with the caller's own id answers 400
   cannot_revoke_current_key). The caller's id comes from APIKEYD_CALLER_ID; such a request
   is sent for the next id instead.
3. DELETE /api-key needs the value in the query or in the body. Each is optional on its own,
   and a document cannot say "one of the two"; a request with neither is skipped.
"""
import datetime
import os

import schemathesis

NEVER = "0001-01-01T00:00:00Z"
CALLER_ID = os.environ.get("APIKEYD_CALLER_ID")


def _parse(value):
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _future(body, field, never=None):
    if not isinstance(body, dict) or field not in body or body[field] == never:
        return
    when = _parse(body[field])
    if when is not None and when <= datetime.datetime.now(datetime.timezone.utc):
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
        body[field] = later.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@schemathesis.hook
def map_case(ctx, case):
    method, path = case.operation.method.upper(), case.operation.path
    if method == "POST":
        _future(case.body, "expires_at")
        if path == "/api-key":
            _future(case.body, "expiration_date", never=NEVER)
    if method == "DELETE" and path == "/api/v1/keys/{id}" and CALLER_ID is not None:
        params = case.path_parameters or {}
        if str(params.get("id")) == CALLER_ID:
            params["id"] = int(CALLER_ID) + 1
    return case


@schemathesis.hook
def filter_case(ctx, case):
    if case.operation.method.upper() == "DELETE" and case.operation.path == "/api-key":
        query = case.query or {}
        has_query = query.get("value") not in (None, "")
        has_body = isinstance(case.body, dict) and "value" in case.body
        return has_query or has_body
    return True
