"""Request schemas: one declaration both validates a request and documents it in OpenAPI.

    body=Body(
        {"card_id": String(max_length=64), "count": Integer(minimum=1, maximum=1000),
         "reference": String(max_length=128)},
        required=("card_id", "count"),
    )
    query=Query({"status": Enum("pending", "approved", "rejected")})

Bodies are strict (DESIGN.md §5): `application/json` only (else 415), at most 64 KiB (else
413, enforced by Flask's MAX_CONTENT_LENGTH), a JSON object, no unknown fields, no wrong
types, no missing required fields — each refused with 400 `invalid_request` naming `param`.
An empty body counts as `{}` (so POSTs without fields need no body). Query strings are
just as strict: unknown or repeated parameters are refused. Duplicate JSON keys, NaN and
Infinity are refused too, since two parsers could read them differently.

Every string of a body (its field names too, at any depth) and of a query must be text
both databases store (`portal.inputs.unstorable`: no NUL, no unpaired surrogate such as
`"\ud800"`); a query's escapes must be UTF-8 (`portal.signing.query_pairs`, decoded once
for the signature and for the views alike). Each is refused with 400 `invalid_request`
naming `param`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from portal.api.errors import ApiError, invalid_request
from portal.inputs import unstorable

_MISSING = object()


class Field:
    """A typed field of a body or query. Subclasses implement `_check` and `schema`."""

    type_name = "value"

    def __init__(self, *, description: str = "", nullable: bool = False, example=None):
        self.description = description
        self.nullable = nullable
        self.example = example

    def parse_json(self, value, param: str):
        """Validate a JSON value; returns it (possibly normalised) or raises ApiError."""
        if value is None:
            if self.nullable:
                return None
            raise invalid_request(f"{param} must be {self.type_name}, not null.", param)
        return self._check(value, param)

    def parse_query(self, text: str, param: str):
        """Validate a query-string value (always text on the wire)."""
        return self._check(text, param)

    def _check(self, value, param):  # pragma: no cover - abstract
        raise NotImplementedError

    def schema(self) -> dict:
        raise NotImplementedError

    def _finish(self, schema: dict) -> dict:
        if self.nullable:
            schema["type"] = [schema["type"], "null"]
        if self.description:
            schema["description"] = self.description
        if self.example is not None:
            schema["examples"] = [self.example]
        return schema


class String(Field):
    type_name = "a string"

    def __init__(self, *, min_length: int = 0, max_length: int | None = None, pattern: str | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.min_length = min_length
        self.max_length = max_length
        self.pattern = pattern
        self._regex = re.compile(pattern) if pattern else None

    def _check(self, value, param):
        if not isinstance(value, str):
            raise invalid_request(f"{param} must be a string.", param)
        if len(value) < self.min_length:
            raise invalid_request(
                f"{param} must not be empty." if self.min_length == 1
                else f"{param} must be at least {self.min_length} characters.", param)
        if self.max_length is not None and len(value) > self.max_length:
            raise invalid_request(f"{param} must be at most {self.max_length} characters.", param)
        if self._regex and not self._regex.search(value):
            raise invalid_request(f"{param} has the wrong format (expected {self.pattern}).", param)
        _refuse_unstorable(value, param)
        return value

    def schema(self) -> dict:
        schema = {"type": "string"}
        if self.min_length:
            schema["minLength"] = self.min_length
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.pattern:
            schema["pattern"] = self.pattern
        return self._finish(schema)


class Enum(Field):
    type_name = "one of the listed values"

    def __init__(self, *values: str, **kwargs):
        super().__init__(**kwargs)
        self.values = values

    def _check(self, value, param):
        if not isinstance(value, str) or value not in self.values:
            raise invalid_request(f"{param} must be one of: {', '.join(self.values)}.", param)
        return value

    def schema(self) -> dict:
        schema = self._finish({"type": "string"})
        schema["enum"] = list(self.values) + ([None] if self.nullable else [])
        return schema


class Integer(Field):
    type_name = "an integer"

    def __init__(self, *, minimum: int | None = None, maximum: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.minimum = minimum
        self.maximum = maximum

    def _check(self, value, param):
        # bool is an int in Python, but `true` is not a number in JSON.
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid_request(f"{param} must be an integer.", param)
        if self.minimum is not None and value < self.minimum:
            raise invalid_request(f"{param} must be at least {self.minimum}.", param)
        if self.maximum is not None and value > self.maximum:
            raise invalid_request(f"{param} must be at most {self.maximum}.", param)
        return value

    def parse_query(self, text, param):
        if not re.fullmatch(r"-?[0-9]{1,18}", text):
            raise invalid_request(f"{param} must be an integer.", param)
        return self._check(int(text), param)

    def schema(self) -> dict:
        schema = {"type": "integer"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return self._finish(schema)


class Boolean(Field):
    type_name = "true or false"

    def _check(self, value, param):
        if not isinstance(value, bool):
            raise invalid_request(f"{param} must be true or false.", param)
        return value

    def parse_query(self, text, param):
        if text not in ("true", "false"):
            raise invalid_request(f"{param} must be true or false.", param)
        return text == "true"

    def schema(self) -> dict:
        return self._finish({"type": "boolean"})


class Array(Field):
    """A JSON array of `items` (a Field), at most `max_items` long."""

    type_name = "an array"

    def __init__(self, items: Field, *, max_items: int, min_items: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.items = items
        self.max_items = max_items
        self.min_items = min_items

    def _check(self, value, param):
        if not isinstance(value, list):
            raise invalid_request(f"{param} must be an array.", param)
        if len(value) > self.max_items:
            raise invalid_request(f"{param} may hold at most {self.max_items} items (got {len(value)}).", param)
        if len(value) < self.min_items:
            raise invalid_request(f"{param} must hold at least {self.min_items} item(s).", param)
        return [self.items.parse_json(item, f"{param}[{i}]") for i, item in enumerate(value)]

    def parse_query(self, text, param):  # pragma: no cover - no query takes arrays
        raise invalid_request(f"{param} cannot be given in the query.", param)

    def schema(self) -> dict:
        schema = {"type": "array", "items": self.items.schema(), "maxItems": self.max_items}
        if self.min_items:
            schema["minItems"] = self.min_items
        return self._finish(schema)


# -- bodies -------------------------------------------------------------------------------

MAX_BODY_BYTES = 64 * 1024


@dataclass
class Body:
    """A JSON object body: `fields` by name, the `required` ones, and optionally groups of
    which at least one field must be present (`one_of_required=[("email", "phone")]`)."""

    fields: dict[str, Field]
    required: tuple[str, ...] = ()
    one_of_required: list[tuple[str, ...]] = field(default_factory=list)
    description: str = ""

    def parse(self, raw: bytes, content_type: str | None) -> dict:
        """The validated body as a dict holding only the fields that were sent."""
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, "request_too_large", "The request body is larger than 64 KiB.")
        if not raw:
            data = {}
        else:
            if not is_json_media_type(content_type):
                raise ApiError(415, "unsupported_media_type",
                               "Send the body as application/json (Content-Type: application/json).")
            data = decode_json(raw)
        if not isinstance(data, dict):
            raise invalid_request("The body must be a JSON object.")
        unknown = [name for name in data if name not in self.fields]
        if unknown:
            raise invalid_request(f"Unknown field {unknown[0]}: this endpoint does not accept it.", unknown[0])
        for name in self.required:
            if name not in data:
                raise invalid_request(f"{name} is required.", name)
        for group in self.one_of_required:
            if not any(data.get(name) is not None for name in group):
                raise invalid_request(f"Give at least one of: {', '.join(group)}.", group[0])
        return {name: self.fields[name].parse_json(value, name) for name, value in data.items()}

    def schema(self) -> dict:
        schema = {
            "type": "object",
            "properties": {name: f.schema() for name, f in self.fields.items()},
            "additionalProperties": False,
        }
        if self.required:
            schema["required"] = list(self.required)
        if self.one_of_required:
            # anyOf (not allOf of anyOf) keeps it readable for the usual single group.
            groups = [{"anyOf": [{"required": [n], "properties": {n: {"not": {"type": "null"}}}}
                                 for n in group]} for group in self.one_of_required]
            if len(groups) == 1:
                schema.update(groups[0])
            else:
                schema["allOf"] = groups
        if self.description:
            schema["description"] = self.description
        return schema


def is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _refuse_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise invalid_request(f"The field {key} appears twice in the body.", key)
        seen[key] = value
    return seen


def _refuse_constant(name):
    raise invalid_request(f"{name} is not valid JSON.")


def _refuse_unstorable(text: str, param: str) -> None:
    reason = unstorable(text)
    if reason is not None:
        raise invalid_request(f"{param} holds {reason}, which cannot be stored; send valid Unicode text "
                              "without NUL characters.", param)


def _shown(name: str) -> str:
    """A field or parameter name that cannot be stored, as `param` names it: its NUL and
    lone surrogates written as escapes (`\\x00`, `\\ud800`)."""
    return name.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _refuse_unstorable_strings(data) -> None:
    """Walk a decoded body: every key and string, at any depth, must be storable text.
    `param` is the top-level field the bad string sits in (or the bad key itself)."""
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        if unstorable(key) is not None:
            _refuse_unstorable(key, _shown(key))
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                _refuse_unstorable(item, key)
            elif isinstance(item, dict):
                for inner_key, inner in item.items():
                    _refuse_unstorable(inner_key, key)
                    stack.append(inner)
            elif isinstance(item, list):
                stack.extend(item)


def decode_json(raw: bytes):
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity, only storable strings."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_request("The body must be UTF-8 encoded JSON.") from None
    try:
        data = json.loads(text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError; says where, never echoes the body
        line = getattr(exc, "lineno", None)
        col = getattr(exc, "colno", None)
        where = f" (line {line}, column {col})" if line else ""
        raise invalid_request(f"The body is not valid JSON{where}.") from None
    except RecursionError:
        raise invalid_request("The body is nested too deeply.") from None
    # Strict JSON has no raw control characters in strings, and valid UTF-8 no surrogates:
    # a NUL or a lone surrogate can only come from a \u escape, so most bodies skip the walk.
    if "\\u" in text:
        _refuse_unstorable_strings(data)
    return data


# -- query strings ------------------------------------------------------------------------


@dataclass
class Query:
    """Query parameters by name; unknown and repeated parameters are refused."""

    fields: dict[str, Field]
    required: tuple[str, ...] = ()

    def parameters(self) -> list[dict]:
        """OpenAPI parameter objects."""
        params = []
        for name, f in self.fields.items():
            schema = f.schema()
            param = {"name": name, "in": "query", "required": name in self.required, "schema": schema}
            if f.description:
                param["description"] = f.description
            params.append(param)
        return params


EMPTY_QUERY = Query({})


def parse_query(pairs, query: Query | None) -> dict:
    """The validated query from its decoded pairs (`portal.signing.query_pairs`: the very
    pairs the signature covers)."""
    query = query or EMPTY_QUERY
    given: dict[str, list[str]] = {}
    for name, text in pairs:
        given.setdefault(name, []).append(text)
    values = {}
    for name, items in given.items():
        _refuse_unstorable(name, _shown(name))
        if name not in query.fields:
            raise invalid_request(f"Unknown query parameter {name}.", name)
        if len(items) > 1:
            raise invalid_request(f"Give {name} once.", name)
        _refuse_unstorable(items[0], name)
        values[name] = query.fields[name].parse_query(items[0], name)
    for name in query.required:
        if name not in values:
            raise invalid_request(f"{name} is required.", name)
    return values
