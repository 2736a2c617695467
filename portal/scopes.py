"""The scopes an API key can carry (DESIGN.md §2). A WRITE scope does not imply its READ twin."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    name: str
    group: str
    type: str  # READ | WRITE
    description: str


SCOPES: dict[str, Scope] = {
    s.name: s
    for s in (
        Scope("member_read", "Member", "READ", "Read member data and validate members"),
        Scope("member_write", "Member", "WRITE", "Create and update members, request and verify OTPs"),
        Scope("card_read", "Card", "READ", "Read stamp cards and their rewards"),
        Scope("claim_write", "Claim", "WRITE", "Create, read, approve and reject claim requests"),
        Scope("referral_read", "Referral", "READ", "Read referral stats and validate codes"),
        Scope("referral_write", "Referral", "WRITE", "Apply referral codes"),
        Scope("stamps_read", "Stamps", "READ", "Read stamp balances and history"),
        Scope("stamps_write", "Stamps", "WRITE", "Add stamps and redeem rewards"),
        Scope("cashback_read", "Cashback", "READ", "Read cashback balances and history"),
        Scope("cashback_write", "Cashback", "WRITE", "Credit and redeem cashback"),
    )
}

SCOPE_NAMES: tuple[str, ...] = tuple(SCOPES)


def scope_groups() -> list[tuple[str, list[Scope]]]:
    """Scopes grouped as the portal shows them: Member, Card, Claim, Referral, Stamps, Cashback."""
    groups: dict[str, list[Scope]] = {}
    for scope in SCOPES.values():
        groups.setdefault(scope.group, []).append(scope)
    return list(groups.items())


def normalise_scopes(names) -> list[str]:
    """Validate and sort scope names; raises ValueError naming the unknown ones."""
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope {', '.join(unknown)} (known: {', '.join(SCOPE_NAMES)})")
    if not names:
        raise ValueError("choose at least one scope")
    return sorted(names, key=SCOPE_NAMES.index)
