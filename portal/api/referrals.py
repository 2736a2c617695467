"""Referrals: a member's referral stats, validating a code, and applying one."""

from __future__ import annotations

from portal.api.members import member_or_404
from portal.api.registry import ApiCall, endpoint, schema_ref
from portal.api.schema import Body, Query, String
from portal.api.stamps import ID, LEDGER_ENTRY, entry_json
from portal.domain import referrals
from portal.domain.events import with_event
from portal.models import Referral, isoformat

CODE = String(min_length=1, max_length=referrals.CODE_MAX, description="A member's referral code.")
REASONS = [referrals.UNKNOWN_CODE, referrals.SELF_REFERRAL, referrals.ALREADY_REFERRED]

REFERRAL_PROPERTIES = {
    "id": {"type": "string", "pattern": "^ref_"},
    "object": {"type": "string", "const": "referral"},
    "referrer_id": {"type": "string"},
    "referee_id": {"type": "string"},
    "rewarded": {"type": "boolean"},
    "created_at": {"type": "string", "format": "date-time"},
}
REFERRAL = schema_ref("Referral", {
    "type": "object", "required": list(REFERRAL_PROPERTIES), "properties": REFERRAL_PROPERTIES,
})
APPLIED_REFERRAL = schema_ref("AppliedReferral", {
    "type": "object",
    "required": [*REFERRAL_PROPERTIES, "entries"],
    "properties": {
        **REFERRAL_PROPERTIES,
        "entries": {"type": "array", "items": LEDGER_ENTRY,
                    "description": "The ledger entries of the program's referral reward (none without one)."},
    },
})
REFERRAL_STATS = schema_ref("ReferralStats", {
    "type": "object",
    "required": ["object", "member_id", "referral_code", "referred_count", "rewarded_count", "referred_by",
                 "referrals"],
    "properties": {
        "object": {"type": "string", "const": "referral_stats"},
        "member_id": {"type": "string"},
        "referral_code": {"type": "string"},
        "referred_count": {"type": "integer", "minimum": 0},
        "rewarded_count": {"type": "integer", "minimum": 0},
        "referred_by": {"type": ["string", "null"], "description": "Who referred this member, if anyone."},
        "referrals": {"type": "array", "items": REFERRAL, "maxItems": referrals.REFERRALS_LISTED,
                      "description": "The latest referrals, newest first."},
    },
})
REFERRAL_VALIDATION = schema_ref("ReferralValidation", {
    "type": "object",
    "required": ["valid"],
    "properties": {
        "valid": {"type": "boolean"},
        "reason": {"type": "string", "enum": REASONS, "description": "Why the code cannot be applied."},
        "referrer_id": {"type": "string", "description": "The member whose code it is."},
    },
})


def referral_json(referral: Referral, *, referrer_id: str | None = None, referee_id: str | None = None) -> dict:
    """A referral as the API shows it (`ref_…`)."""
    return {
        "id": referral.public_id,
        "object": "referral",
        "referrer_id": referrer_id or referral.referrer.public_id,
        "referee_id": referee_id or referral.referee.public_id,
        "rewarded": referral.rewarded,
        "created_at": isoformat(referral.created_at),
    }


@endpoint("GET", "/members/<member_id>/referrals", scope="referral_read", summary="Referral stats",
          response=REFERRAL_STATS, errors={404: "No such member"})
def referral_stats(call: ApiCall, member_id):
    """The member's `referral_code`, how many members they referred (`referred_count`), for
    how many a reward was credited (`rewarded_count`), who referred them (`referred_by`),
    and their latest 100 referrals, newest first."""
    stats = referrals.referral_stats(member_or_404(call, member_id))
    return {
        "object": "referral_stats",
        "member_id": stats.member.public_id,
        "referral_code": stats.member.referral_code,
        "referred_count": stats.referred_count,
        "rewarded_count": stats.rewarded_count,
        "referred_by": stats.referred_by,
        "referrals": [referral_json(r, referrer_id=stats.member.public_id) for r in stats.latest],
    }


@endpoint("GET", "/referrals/validate", scope="referral_read", summary="Validate a referral code",
          query=Query({"code": CODE, "member_id": ID}, required=("code",)),
          response=REFERRAL_VALIDATION, errors={404: "No such member (member_id)"})
def validate_referral_code(call: ApiCall):
    """Whether `code` belongs to a member and, given `member_id`, could refer that member
    (not themselves, not someone already referred). `reason`: unknown_code, self_referral
    or already_referred."""
    member = member_or_404(call, call.query["member_id"]) if "member_id" in call.query else None
    check = referrals.validate_code(call.partner_id, call.mode, call.query["code"], member)
    result: dict = {"valid": check.valid}
    if check.reason is not None:
        result["reason"] = check.reason
    if check.referrer is not None:
        result["referrer_id"] = check.referrer.public_id
    return result


@endpoint("POST", "/referrals/apply", scope="referral_write", summary="Apply a referral code",
          body=Body({"code": CODE, "member_id": ID}, required=("code", "member_id")),
          response=APPLIED_REFERRAL, status=201,
          errors={400: "unknown_code: no member has this code",
                  404: "No such member",
                  409: "self_referral: the code is the member's own (or their email's or phone's); "
                       "already_referred: the member was referred before"})
def apply_referral(call: ApiCall):
    """Record that the code's owner referred `member_id` and credit the program's referral
    reward in the same transaction. A member is referred at most once, never by themselves."""
    member = member_or_404(call, call.body["member_id"])

    def serialize(referral):
        data = referral_json(referral)
        ids = {referral.referrer.id: referral.referrer.public_id, referral.referee.id: referral.referee.public_id}
        data["entries"] = [entry_json(entry, ids[entry.member_id]) for entry in referral.entries]
        return data

    return with_event(call.application, call.mode, "referral.applied",
                      lambda: referrals.apply_referral(member, call.body["code"]), serialize)[1]
