"""The Docs area: the guide to credentials, modes, scopes and rotation (/docs), and the
API reference (/docs/api): endpoints, scopes, signing and runnable examples, rendered from
the same OpenAPI document the API serves, so they cannot drift."""

from __future__ import annotations

import re

from flask import Blueprint, render_template, request
from markupsafe import Markup, escape

from portal.api.openapi import STANDARD_ERRORS, document, openapi_path
from portal.scopes import scope_groups
from portal.signing import NotUtf8, canonical_query, canonical_string, query_pairs, signature

bp = Blueprint("docs", __name__)

METHOD_ORDER = ("get", "post", "patch", "put", "delete")

# A worked example with made-up credentials (they match no real account).
SAMPLE = {
    "app_id": "app_k3j9x0q2m5n8p1r4",
    "app_secret": "secret_Zq8fN2vXp4LrT6yBw1Kc9Hd3Mg5Js7Ae",
    "api_key": "test_sk_Qm4vN8xZ2pL6rT0yB3wK7cH1dG5jS9aE1Q4vv2",
    "timestamp": "1767225602",
    "nonce": "nonce-cccccccccccccccc",
    "body": '{"email":"ana@example.com","name":"Ana"}',
}


# The "Escapes are UTF-8" paragraph: ÿ spelled right, and spelled as a lone byte.
UTF8_EXAMPLE = {"path": "/v1/referrals/validate", "valid_query": "code=%C3%BF", "refused_query": "code=%FF"}


def utf8_example() -> dict:
    """The paragraph's figures, computed by the server's own signing code."""
    try:
        query_pairs(UTF8_EXAMPLE["refused_query"])
    except NotUtf8 as exc:
        refused_param = exc.param
    else:  # pragma: no cover - the example would be wrong
        raise AssertionError("the refused example decodes")
    return {**UTF8_EXAMPLE, "canonical_query": canonical_query(UTF8_EXAMPLE["valid_query"]),
            "refused_param": refused_param}


# Statuses every authenticated call can answer; the page's "Errors" section explains them once.
COMMON_STATUSES = ("400", "401", "403", "413", "415")

_BACKTICK_SPAN = re.compile(r"`([^`\n]+)`")


def inline_code(text: str) -> Markup:
    """Description text with its Markdown `backtick` spans shown as <code>.

    The text is escaped first, so a description can never inject HTML; only the
    backtick spans become markup."""
    return Markup(_BACKTICK_SPAN.sub(r"<code>\1</code>", str(escape(text))))


_ERROR_CODE = re.compile(r"(?<![`\w])([a-z]+(?:_[a-z]+)+)(?![`\w])")


def path_with_breaks(path: str) -> Markup:
    """An API path that may wrap after each "/" on a narrow screen, not inside a word."""
    return Markup("/<wbr>").join(escape(part) for part in path.split("/"))


def _specific_errors(operation: dict) -> list[tuple[str, str]]:
    """The operation's own error statuses, each with one description.

    The OpenAPI document joins an endpoint's specific description to the generic one
    ("No such member; or: No such object…"); the page shows only the specific part, the
    generic one when there is nothing specific, and leaves out the generic idempotency
    409 of every POST (the "Errors" section covers it once)."""
    errors = []
    for code, response in operation["responses"].items():
        if code.startswith("2") or code in COMMON_STATUSES:
            continue
        text = response["description"]
        generic = STANDARD_ERRORS.get(code)
        if generic and text.endswith(f"; or: {generic}"):
            text = text[: -len(f"; or: {generic}")]
        elif generic and text == generic and code == "409":
            continue
        errors.append((code, _ERROR_CODE.sub(r"`\1`", text)))  # error codes read as code
    return errors


def _type_label(schema: dict) -> str:
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(k for k in kind)
    if "enum" in schema:
        kind = " | ".join(str(v) for v in schema["enum"] if v is not None)
    limits = []
    if "minimum" in schema or "maximum" in schema:
        limits.append(f"{schema.get('minimum', '…')}–{schema.get('maximum', '…')}")
    if "maxLength" in schema:
        limits.append(f"≤ {schema['maxLength']} chars")
    return kind + (f" ({', '.join(limits)})" if limits else "")


def _fields(operation: dict) -> list[dict]:
    """Body fields and query parameters of an operation, for the table."""
    rows = []
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body:
        required = set(body.get("required", []))
        for name, schema in body.get("properties", {}).items():
            rows.append({"name": name, "where": "body", "type": _type_label(schema),
                         "required": name in required, "description": schema.get("description", "")})
    for param in operation.get("parameters", []):
        if param["in"] in ("query", "header"):
            rows.append({"name": param["name"], "where": param["in"], "type": _type_label(param["schema"]),
                         "required": param.get("required", False), "description": param.get("description", "")})
    return rows


def endpoint_groups() -> list[tuple[str, list[dict]]]:
    """Operations grouped by tag, in the document's order."""
    doc = document()
    groups: dict[str, list[dict]] = {}
    for path, item in doc["paths"].items():
        for method in METHOD_ORDER:
            operation = item.get(method)
            if operation is None:
                continue
            success = next(code for code in operation["responses"] if code.startswith("2"))
            errors = _specific_errors(operation)
            groups.setdefault(operation["tags"][0], []).append({
                "id": operation["operationId"], "method": method.upper(), "path": path,
                "summary": operation["summary"], "description": operation.get("description", ""),
                "scope": operation.get("x-required-scope"), "public": operation.get("security") == [],
                "fields": _fields(operation), "success": success, "errors": errors,
            })
    order = [tag["name"] for tag in doc["tags"]]
    return sorted(groups.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))


@bp.get("/docs")
def guide():
    """Our own guide to credentials, modes, scopes, key rotation, and teams and security."""
    from portal.config import current_settings

    settings = current_settings()
    return render_template("docs/guide.html", scope_groups=scope_groups(),
                           session_idle_hours=settings.session_idle_hours,
                           request_log_days=settings.request_log_days,
                           rate_limit_test=settings.rate_limit_test, rate_limit_prod=settings.rate_limit_prod)


@bp.get("/docs/api")
def api():
    """The API reference: signing, errors, scopes and every endpoint, with examples."""
    from portal.config import current_settings

    canonical = canonical_string("POST", "/v1/members", "", SAMPLE["body"].encode(), app_id=SAMPLE["app_id"],
                                 timestamp=SAMPLE["timestamp"], nonce=SAMPLE["nonce"])
    return render_template(
        "docs/api.html",
        groups=endpoint_groups(),
        scope_groups=scope_groups(),
        base_url=request.host_url.rstrip("/"),
        sample=SAMPLE,
        sample_canonical=canonical,
        sample_signature=signature(SAMPLE["app_secret"], canonical),
        utf8=utf8_example(),
        rate_limit_test=current_settings().rate_limit_test,
        rate_limit_prod=current_settings().rate_limit_prod,
        otp_per_app_hour=current_settings().otp_per_app_hour,
        openapi_path=openapi_path,
        inline_code=inline_code,
        path_with_breaks=path_with_breaks,
    )
