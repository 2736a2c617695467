"""Typed results: objects whose attributes are the JSON fields of the API's answer.

``member.email`` reads the ``email`` field; ``member.raw`` (or ``member.to_dict()``) is the
JSON exactly as received, and ``member["email"]`` works too. Fields the server adds later
are reachable as attributes without an SDK upgrade.

Each class declares exactly the properties of the server's response schema for it (the
``components.schemas`` of ``GET /v1/openapi.json``; tests/sdk/test_object_fields.py holds
the mapping and fails when the two differ). A declared field the server leaves out of an
answer (an optional one, such as a ledger entry's ``currency``, which only cashback entries
carry) reads as None.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, Iterator, Mapping


class LoyaltyObject:
    """A JSON object from the API, read through attributes; ``raw`` keeps the JSON."""

    _nested: ClassVar[dict[str, type["LoyaltyObject"]]] = {}

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", dict(data))

    @classmethod
    def _fields(cls) -> set[str]:
        names: set[str] = set()
        for klass in cls.__mro__:
            names.update(getattr(klass, "__annotations__", {}))
        return {n for n in names if not n.startswith("_")}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        data = object.__getattribute__(self, "_data")
        if name in data:
            value = data[name]
            nested = type(self)._nested.get(name)
            if nested is not None and value is not None:
                if isinstance(value, list):
                    return [nested(item) for item in value]
                return nested(value)
            return value
        if name in type(self)._fields():
            return None
        raise AttributeError(f"{type(self).__name__} has no field {name!r} (fields: {', '.join(sorted(data))})")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only; change objects through the client's methods")

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LoyaltyObject):
            return type(self) is type(other) and self._data == other._data
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._data) | self._fields())

    def __repr__(self) -> str:
        # Lists of plain values (a key's scopes) are what a reader looks for; nested objects
        # (a card's rewards, a page of entries) would drown the line, so they show a count.
        def short(value: Any) -> str:
            if isinstance(value, dict):
                return "{…}"
            if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
                return f"[{len(value)} item{'' if len(value) == 1 else 's'}]"
            return repr(value)

        shown = ", ".join(f"{k}={short(v)}" for k, v in self._data.items())
        return f"{type(self).__name__}({shown})"

    @property
    def raw(self) -> dict[str, Any]:
        """The JSON object as the server sent it."""
        data: dict[str, Any] = self._data
        return data

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the JSON object, safe to change."""
        return copy.deepcopy(self._data)


class KeyInfo(LoyaltyObject):
    """The calling API key (``GET /v1/key``)."""

    object: str
    app_id: str
    mode: str
    scopes: list[str]
    name: str
    expires_at: str | None


class Member(LoyaltyObject):
    """A loyalty member of this application's mode."""

    id: str
    object: str
    mode: str
    external_id: str | None
    name: str
    email: str | None
    phone: str | None
    referral_code: str
    verified: bool
    verified_at: str | None
    created_at: str
    updated_at: str


class MemberValidation(LoyaltyObject):
    """Whether a member exists for an email, phone or external id."""

    object: str
    valid: bool
    member_id: str | None
    verified: bool


class OtpRequest(LoyaltyObject):
    """An OTP that was sent (the code itself is never returned); ``delivered`` is False in test mode."""

    object: str
    member_id: str
    channel: str
    expires_at: str
    delivered: bool


class OtpVerification(LoyaltyObject):
    """A code that was accepted: ``verified`` and the now verified ``member``."""

    _nested = {"member": Member}

    object: str
    verified: bool
    member: Member


class Reward(LoyaltyObject):
    """A reward bought with ``stamps_cost`` stamps of its card."""

    id: str
    object: str
    name: str
    stamps_cost: int


class Card(LoyaltyObject):
    """A stamp card and its rewards."""

    _nested = {"rewards": Reward}

    id: str
    object: str
    name: str
    description: str
    rewards: list[Reward]
    created_at: str


class StampBalance(LoyaltyObject):
    """A member's stamps on one card."""

    card_id: str
    card_name: str
    balance: int


class StampBalances(LoyaltyObject):
    """A member's stamp balance per card (``data``); iterate over it, or ``for_card(card_id)`` picks one."""

    _nested = {"data": StampBalance}

    object: str
    member_id: str
    data: list[StampBalance]

    def _rows(self) -> list[StampBalance]:
        rows: list[StampBalance] = self.data if isinstance(self._data.get("data"), list) else []
        return rows

    def __iter__(self) -> Iterator[StampBalance]:  # type: ignore[override]
        return iter(self._rows())

    def __len__(self) -> int:
        return len(self._rows())

    def for_card(self, card_id: str) -> int:
        """The balance on ``card_id`` (0 when the member has no stamps on it yet)."""
        for row in self._rows():
            if row.card_id == card_id:
                return int(row.balance)
        return 0


class LedgerEntry(LoyaltyObject):
    """An append-only stamps or cashback movement, with the balance after it.

    ``card_id`` is set on stamps entries, ``currency`` on cashback entries.
    """

    id: str
    object: str
    member_id: str
    kind: str
    card_id: str | None
    amount: int
    balance_after: int
    source: str
    reference: str | None
    description: str | None
    currency: str | None
    created_at: str


class Redemption(LoyaltyObject):
    """A reward bought with stamps, with the ledger ``entry`` that paid for it."""

    _nested = {"entry": LedgerEntry}

    id: str
    object: str
    member_id: str
    reward_id: str
    card_id: str
    stamps_spent: int
    balance_after: int
    entry: LedgerEntry
    created_at: str


class CashbackBalance(LoyaltyObject):
    """A member's cashback balance in minor units of ``currency``."""

    object: str
    member_id: str
    balance: int
    currency: str


class Claim(LoyaltyObject):
    """A member's request for stamps or cashback: ``pending``, ``approved`` or ``rejected``."""

    id: str
    object: str
    member_id: str
    kind: str
    card_id: str | None
    count: int | None
    amount: int | None
    reference: str | None
    note: str | None
    status: str
    reason: str | None
    entry_id: str | None
    created_at: str
    decided_at: str | None


class Referral(LoyaltyObject):
    """One member referring another (as listed in ``ReferralStats.referrals``)."""

    id: str
    object: str
    referrer_id: str
    referee_id: str
    rewarded: bool
    created_at: str


class AppliedReferral(Referral):
    """A referral just applied: a ``Referral`` with ``entries``, the ledger entries of the
    program's referral reward (empty without a referral rule)."""

    _nested = {"entries": LedgerEntry}

    entries: list[LedgerEntry]


class ReferralStats(LoyaltyObject):
    """A member's referral code and the referrals it brought."""

    _nested = {"referrals": Referral}

    object: str
    member_id: str
    referral_code: str
    referred_count: int
    rewarded_count: int
    referred_by: str | None
    referrals: list[Referral]


class ReferralValidation(LoyaltyObject):
    """Whether a referral code can be applied; ``reason`` says why not."""

    valid: bool
    reason: str | None
    referrer_id: str | None
