"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

Three of apikeyd's rules cannot be written in an OpenAPI document, so a request the document
calls valid can still be refused with 400, which schemathesis's positive_data_acceptance
check (ST202) reports. These hooks change only generated requests that break one of them,
and only in the way the rule needs; every check stays on, and every other request is sent as
generated:

1. An expiry must lie in the future (`expires_at` on create and PATCH, and the shard
   family's `expiration_date` apart from its "never" value 0001-01-01T00:00:00Z). JSON Schema
   has no "after now": a past date is moved to one day from now.
2. A key cannot revoke itself (DELETE /api/v1/keys/{id} with the caller's own id answers 400
   cannot_revoke_current_key). The caller's id comes from APIKEYD_CALLER_ID; such a request
   is sent for the next id instead.
3. DELETE /api-key needs the value in the query or in the body, and the same value if both
   are given. Each is optional on its own, and a document cannot say "one of the two" or
   "equal": a request with neither is skipped, and when both differ the body's is made the
   query's.

Two more, around schemathesis itself. Its coverage phase can label a case positive while the
optional DELETE /api-key body in it breaks the body's schema (`{"value": ["null"]}`); such
cases are skipped (a body that breaks the schema in a case labelled negative is still sent).
And its stateful phase links a response field to a path parameter by name
and sends a null (Python's None, written "None" in the URL) when that field is null (a global key's
`application_id`), a value the document's `format: uuid` refuses. Such a parameter is sent
as a fresh UUID instead (which names nothing: 404).
"""
import datetime
import os
import re
import uuid

import schemathesis

NEVER = "0001-01-01T00:00:00Z"
KEY_SHAPE = re.compile(r"^sk-[0-9A-Za-z]{49}$")
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
def before_call(ctx, case, kwargs):
    # In before_call, not map_case: schemathesis re-checks a case against the document after
    # this hook, so a request changed here is judged as what is actually sent (and the
    # stateful phase, which map_case does not reach, passes through here too).
    method, path = case.operation.method.upper(), case.operation.path
    if method in ("POST", "PATCH"):
        _future(case.body, "expires_at")
        if path == "/api-key":
            _future(case.body, "expiration_date", never=NEVER)
    params = case.path_parameters or {}
    if method == "DELETE" and path == "/api/v1/keys/{id}" and CALLER_ID is not None:
        if str(params.get("id")) == CALLER_ID:
            params["id"] = int(CALLER_ID) + 1
    for name, value in params.items():
        if value is None or value == "None":
            params[name] = str(uuid.uuid4())
    if method == "DELETE" and path == "/api-key":
        query, body = case.query or {}, case.body
        if isinstance(body, dict) and KEY_SHAPE.match(str(body.get("value"))) and KEY_SHAPE.match(str(query.get("value"))):
            body["value"] = query["value"]


@schemathesis.hook
def filter_case(ctx, case):
    if case.operation.method.upper() == "DELETE" and case.operation.path == "/api-key":
        query = case.query or {}
        has_query = query.get("value") not in (None, "")
        has_body = isinstance(case.body, dict) and "value" in case.body
        meta = case.meta
        labelled_positive = meta is not None and meta.generation.mode.is_positive
        body_sent = isinstance(case.body, (dict, list, str, int, float, bool))
        if labelled_positive and body_sent and not (has_body and isinstance(case.body["value"], str)):
            return False
        return has_query or has_body
    return True
