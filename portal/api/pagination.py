"""Cursor lists (DESIGN.md §5): `limit` 1–100 (default 20) and `starting_after` (an id),
answered as `{"object": "list", "data": [...], "has_more": bool}`, newest first.

    @endpoint("GET", "/claims", scope="claim_write", query=list_query({"status": Enum(...)}),
              response=list_of(CLAIM), summary="List claims")
    def list_claims(call):
        rows = Claim.select().where(...scoped to call.partner_id and call.mode...)
        return page(rows, Claim, call.query, serialize=claim_json)
"""

from __future__ import annotations

from portal.api.errors import invalid_request
from portal.api.schema import Field, Integer, Query, String

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

LIMIT = Integer(minimum=1, maximum=MAX_LIMIT, description="How many objects to return (1-100, default 20).")
STARTING_AFTER = String(min_length=1, max_length=64,
                        description="An object id from the previous page: the list continues after it.")


def list_query(filters: dict[str, Field] | None = None) -> Query:
    """A Query with `limit`, `starting_after` and the endpoint's own filters."""
    return Query({"limit": LIMIT, "starting_after": STARTING_AFTER, **(filters or {})})


def list_of(item_schema: dict) -> dict:
    """The JSON Schema of a list response whose items are `item_schema`."""
    return {
        "type": "object",
        "required": ["object", "data", "has_more"],
        "properties": {
            "object": {"type": "string", "const": "list"},
            "data": {"type": "array", "items": item_schema},
            "has_more": {"type": "boolean"},
        },
    }


def page(select, model, query: dict, *, serialize, id_field=None, public_id_field=None,
         anchor_scope=None) -> dict:
    """One page of `select` (already scoped to the caller), newest first.

    `model` must have an auto-increment `id` and a unique `public_id` (or pass the
    fields). `starting_after` that is not in `select` — a typo, another partner's or the
    other mode's id — is a 400 naming the param, never a leak of whether it exists.

    A filtered list whose items can leave the filter (a claim approved while paging
    through `status=pending`) passes `anchor_scope`: the same select scoped to the caller
    but without the filters. `starting_after` is then looked up there, so the next page
    still continues after an item that has just left the list.
    """
    id_field = id_field or model.id
    public_id_field = public_id_field or model.public_id
    limit = query.get("limit", DEFAULT_LIMIT)
    after = query.get("starting_after")
    if after is not None:
        anchor = (select if anchor_scope is None else anchor_scope).where(public_id_field == after).first()
        if anchor is None:
            raise invalid_request(f"starting_after {after!r} is not an id in this list.", "starting_after")
        select = select.where(id_field < getattr(anchor, id_field.name))
    rows = list(select.order_by(id_field.desc()).limit(limit + 1))
    return {
        "object": "list",
        "data": [serialize(row) for row in rows[:limit]],
        "has_more": len(rows) > limit,
    }
