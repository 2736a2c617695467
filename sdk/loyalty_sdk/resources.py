"""The API's resources as client attributes: ``client.members``, ``cards``, ``stamps``,
``cashback``, ``claims`` and ``referrals``.

Every method checks its scope against the key's scopes before sending (``KeyScopes.check``,
raising ``InsufficientScopeError`` without a network call), sends through the
``Requestor`` (``request``, or ``get_list`` for iterators that follow ``starting_after``
pages) and wraps the JSON in its typed object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from loyalty_sdk.objects import (
    AppliedReferral,
    Card,
    CashbackBalance,
    Claim,
    LedgerEntry,
    Member,
    MemberValidation,
    OtpRequest,
    OtpVerification,
    Redemption,
    ReferralStats,
    ReferralValidation,
    StampBalances,
)

if TYPE_CHECKING:
    from loyalty_sdk._requestor import ListIterator, Requestor
    from loyalty_sdk.scopes import KeyScopes


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # "not given", as opposed to None


def _fields(**values: Any) -> dict[str, Any]:
    """The body fields the caller actually gave (None means 'not given')."""
    return {name: value for name, value in values.items() if value is not None}


class _Resource:
    """One group of operations, sent through ``requestor`` once ``scopes`` allows them."""

    def __init__(self, requestor: "Requestor", scopes: "KeyScopes") -> None:
        self._requestor = requestor
        self._scopes = scopes

    def _route(self, operation: str, **path_params: str) -> tuple[str, str]:
        """The operation's HTTP method and path with its ids filled in, once its scope is checked."""
        endpoint = self._scopes.check(operation)
        path = endpoint.path
        for name, value in path_params.items():
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string id, not {value!r}")
            path = path.replace("{" + name + "}", quote(value, safe=""))
        return endpoint.method, path


class Members(_Resource):
    """Members of the program (scopes ``member_read`` and ``member_write``)."""

    def create(self, *, email: str | None = None, phone: str | None = None, name: str | None = None,
               external_id: str | None = None, idempotency_key: str | None = None) -> Member:
        """Create a member (at least one of ``email`` and ``phone``); the member gets a unique ``referral_code``."""
        if email is None and phone is None:
            raise ValueError("a member needs an email or a phone number (or both)")
        method, path = self._route("members.create")
        return Member(self._requestor.request(
            method, path, json_body=_fields(email=email, phone=phone, name=name, external_id=external_id),
            idempotency_key=idempotency_key))

    def get(self, member_id: str) -> Member:
        """One member by id (``mem_…``); ``NotFoundError`` if it is not this application's or mode's."""
        method, path = self._route("members.get", member_id=member_id)
        return Member(self._requestor.request(method, path))

    def update(self, member_id: str, *, name: Any = UNSET, email: Any = UNSET, phone: Any = UNSET,
               external_id: Any = UNSET) -> Member:
        """Change the given fields of a member (pass None to clear an optional one)."""
        body = {k: v for k, v in dict(name=name, email=email, phone=phone, external_id=external_id).items()
                if v is not UNSET}
        if not body:
            raise ValueError("give at least one of name, email, phone, external_id to update")
        method, path = self._route("members.update", member_id=member_id)
        return Member(self._requestor.request(method, path, json_body=body))

    def list(self, *, email: str | None = None, phone: str | None = None, external_id: str | None = None,
             limit: int | None = None, page_size: int = 100) -> "ListIterator[Member]":
        """Iterate over members, newest first, optionally filtered by ``email``, ``phone`` or ``external_id``.

        ``limit`` caps the total yielded; pages of ``page_size`` are fetched as needed.
        """
        _, path = self._route("members.list")
        return self._requestor.get_list(path, Member, params=_fields(email=email, phone=phone, external_id=external_id),
                                        limit=limit, page_size=page_size)

    def validate(self, *, email: str | None = None, phone: str | None = None,
                 external_id: str | None = None) -> MemberValidation:
        """Whether a member exists for ``email``, ``phone`` or ``external_id``: ``valid``, ``member_id``, ``verified``."""
        params = _fields(email=email, phone=phone, external_id=external_id)
        if len(params) != 1:
            raise ValueError("give exactly one of email, phone, external_id to validate")
        method, path = self._route("members.validate")
        return MemberValidation(self._requestor.request(method, path, params=params))

    def request_otp(self, member_id: str, *, channel: str = "email",
                    idempotency_key: str | None = None) -> OtpRequest:
        """Send the member a 6-digit code by ``channel`` (``email`` or ``sms``), valid 10 minutes.

        At most one per 30 s and five per hour per member (``RateLimitError`` otherwise,
        with ``retry_after``). In test mode nothing is sent and the code is ``000000``.
        """
        method, path = self._route("members.request_otp", member_id=member_id)
        return OtpRequest(self._requestor.request(method, path, json_body={"channel": channel},
                                                  idempotency_key=idempotency_key))

    def verify_otp(self, member_id: str, code: str, *, idempotency_key: str | None = None) -> OtpVerification:
        """Check a code (5 tries per code); success marks the member verified."""
        method, path = self._route("members.verify_otp", member_id=member_id)
        return OtpVerification(self._requestor.request(method, path, json_body={"code": code},
                                                       idempotency_key=idempotency_key))


class Cards(_Resource):
    """The program's stamp cards and their rewards (scope ``card_read``)."""

    def list(self, *, limit: int | None = None, page_size: int = 100) -> "ListIterator[Card]":
        """Iterate over the program's stamp cards, each with its ``rewards``."""
        _, path = self._route("cards.list")
        return self._requestor.get_list(path, Card, limit=limit, page_size=page_size)

    def get(self, card_id: str) -> Card:
        """One stamp card (``card_…``) with its rewards."""
        method, path = self._route("cards.get", card_id=card_id)
        return Card(self._requestor.request(method, path))


class Stamps(_Resource):
    """Stamp balances and the stamps ledger (scopes ``stamps_read`` and ``stamps_write``)."""

    def balance(self, member_id: str) -> StampBalances:
        """The member's balance per card; ``.for_card(card_id)`` gives one card's count."""
        method, path = self._route("stamps.balance", member_id=member_id)
        return StampBalances(self._requestor.request(method, path))

    def history(self, member_id: str, *, card_id: str | None = None, limit: int | None = None,
                page_size: int = 100) -> "ListIterator[LedgerEntry]":
        """Iterate over the member's stamp ledger entries, newest first (optionally of one ``card_id``)."""
        _, path = self._route("stamps.history", member_id=member_id)
        return self._requestor.get_list(path, LedgerEntry, params=_fields(card_id=card_id), limit=limit,
                                        page_size=page_size)

    def add(self, member_id: str, *, card_id: str, count: int, reference: str | None = None,
            idempotency_key: str | None = None) -> LedgerEntry:
        """Add ``count`` (1-1000) stamps on ``card_id``; returns the ledger entry with ``balance_after``."""
        method, path = self._route("stamps.add", member_id=member_id)
        return LedgerEntry(self._requestor.request(
            method, path, json_body=_fields(card_id=card_id, count=count, reference=reference),
            idempotency_key=idempotency_key))

    def redeem(self, member_id: str, *, card_id: str, reward_id: str, reference: str | None = None,
               idempotency_key: str | None = None) -> Redemption:
        """Redeem ``reward_id`` of ``card_id``, spending its ``stamps_cost``; ``ConflictError`` ``insufficient_stamps`` otherwise."""
        method, path = self._route("stamps.redeem", member_id=member_id)
        return Redemption(self._requestor.request(
            method, path, json_body=_fields(card_id=card_id, reward_id=reward_id, reference=reference),
            idempotency_key=idempotency_key))


class Cashback(_Resource):
    """Cashback balances and ledger, in minor units (scopes ``cashback_read`` and ``cashback_write``)."""

    def balance(self, member_id: str) -> CashbackBalance:
        """The member's ``balance`` in minor units of ``currency``."""
        method, path = self._route("cashback.balance", member_id=member_id)
        return CashbackBalance(self._requestor.request(method, path))

    def history(self, member_id: str, *, limit: int | None = None, page_size: int = 100) -> "ListIterator[LedgerEntry]":
        """Iterate over the member's cashback ledger entries, newest first."""
        _, path = self._route("cashback.history", member_id=member_id)
        return self._requestor.get_list(path, LedgerEntry, limit=limit, page_size=page_size)

    def credit(self, member_id: str, *, amount: int, reference: str | None = None,
               description: str | None = None, idempotency_key: str | None = None) -> LedgerEntry:
        """Credit ``amount`` (> 0, minor units); returns the ledger entry with ``balance_after``."""
        method, path = self._route("cashback.credit", member_id=member_id)
        return LedgerEntry(self._requestor.request(
            method, path, json_body=_fields(amount=amount, reference=reference, description=description),
            idempotency_key=idempotency_key))

    def redeem(self, member_id: str, *, amount: int, reference: str | None = None,
               description: str | None = None, idempotency_key: str | None = None) -> LedgerEntry:
        """Debit ``amount``; ``ConflictError`` ``insufficient_balance`` if the balance is lower."""
        method, path = self._route("cashback.redeem", member_id=member_id)
        return LedgerEntry(self._requestor.request(
            method, path, json_body=_fields(amount=amount, reference=reference, description=description),
            idempotency_key=idempotency_key))


class Claims(_Resource):
    """Members' requests for stamps or cashback, decided by the partner (scope ``claim_write``)."""

    def create(self, member_id: str, *, kind: str | None = None, card_id: str | None = None,
               count: int | None = None, amount: int | None = None, reference: str | None = None,
               note: str | None = None, idempotency_key: str | None = None) -> Claim:
        """File a pending claim for ``count`` stamps on ``card_id``, or for cashback ``amount``.

        ``kind`` (``stamps``/``cashback``) follows from the fields when not given.
        """
        if kind is None:
            kind = "cashback" if amount is not None else "stamps"
        method, path = self._route("claims.create")
        return Claim(self._requestor.request(
            method, path, idempotency_key=idempotency_key,
            json_body=_fields(member_id=member_id, kind=kind, card_id=card_id, count=count, amount=amount,
                              reference=reference, note=note)))

    def get(self, claim_id: str) -> Claim:
        """One claim (``clm_…``)."""
        method, path = self._route("claims.get", claim_id=claim_id)
        return Claim(self._requestor.request(method, path))

    def list(self, *, status: str | None = None, member_id: str | None = None, limit: int | None = None,
             page_size: int = 100) -> "ListIterator[Claim]":
        """Iterate over claims, newest first, optionally by ``status`` (pending/approved/rejected) or ``member_id``."""
        _, path = self._route("claims.list")
        return self._requestor.get_list(path, Claim, params=_fields(status=status, member_id=member_id),
                                        limit=limit, page_size=page_size)

    def approve(self, claim_id: str, *, idempotency_key: str | None = None) -> Claim:
        """Approve a pending claim, crediting the ledger exactly once; ``ConflictError`` ``claim_not_pending`` otherwise."""
        method, path = self._route("claims.approve", claim_id=claim_id)
        return Claim(self._requestor.request(method, path, idempotency_key=idempotency_key))

    def reject(self, claim_id: str, *, reason: str | None = None, idempotency_key: str | None = None) -> Claim:
        """Reject a pending claim with an optional ``reason``; ``ConflictError`` ``claim_not_pending`` otherwise."""
        method, path = self._route("claims.reject", claim_id=claim_id)
        return Claim(self._requestor.request(method, path, json_body=_fields(reason=reason),
                                             idempotency_key=idempotency_key))


class Referrals(_Resource):
    """Referral codes (scopes ``referral_read`` and ``referral_write``)."""

    def stats(self, member_id: str) -> ReferralStats:
        """The member's ``referral_code``, ``referred_count``, ``rewarded_count`` and ``referrals``."""
        method, path = self._route("referrals.stats", member_id=member_id)
        return ReferralStats(self._requestor.request(method, path))

    def validate(self, code: str, *, member_id: str | None = None) -> ReferralValidation:
        """Whether ``code`` can be applied (to ``member_id``, catching self-referral): ``valid``, ``reason``, ``referrer_id``."""
        method, path = self._route("referrals.validate")
        return ReferralValidation(self._requestor.request(method, path, params=_fields(code=code, member_id=member_id)))

    def apply(self, *, code: str, member_id: str, idempotency_key: str | None = None) -> AppliedReferral:
        """Refer ``member_id`` with ``code`` (once per member, never itself); the program's reward is credited with it.

        The result's ``entries`` are the ledger entries of that reward (empty without a referral rule).
        """
        method, path = self._route("referrals.apply")
        return AppliedReferral(self._requestor.request(method, path, json_body={"code": code, "member_id": member_id},
                                                       idempotency_key=idempotency_key))
