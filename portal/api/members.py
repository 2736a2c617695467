"""Members and their OTPs: /v1/members…

Other resource modules look members up with `member_or_404(call, member_id)`, which is
scoped to the caller's partner and mode.
"""

from __future__ import annotations

from portal.api.errors import invalid_request, not_found
from portal.api.pagination import list_of, list_query, page
from portal.api.registry import ApiCall, endpoint, schema_ref
from portal.api.schema import Body, Enum, Query, String
from portal.domain import members, otp
from portal.domain.events import with_event
from portal.models import Member, isoformat

MEMBER = schema_ref("Member", {
    "type": "object",
    "required": ["id", "object", "mode", "external_id", "name", "email", "phone", "referral_code",
                 "verified", "verified_at", "created_at", "updated_at"],
    "properties": {
        "id": {"type": "string", "pattern": "^mem_"},
        "object": {"type": "string", "const": "member"},
        "mode": {"type": "string", "enum": ["test", "prod"]},
        "external_id": {"type": ["string", "null"]},
        "name": {"type": "string"},
        "email": {"type": ["string", "null"]},
        "phone": {"type": ["string", "null"], "description": "E.164"},
        "referral_code": {"type": "string"},
        "verified": {"type": "boolean"},
        "verified_at": {"type": ["string", "null"], "format": "date-time"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
})

VALIDATION = schema_ref("MemberValidation", {
    "type": "object",
    "required": ["object", "valid", "member_id", "verified"],
    "properties": {
        "object": {"type": "string", "const": "member_validation"},
        "valid": {"type": "boolean", "description": "A member with this email, phone or external id exists."},
        "member_id": {"type": ["string", "null"]},
        "verified": {"type": "boolean"},
    },
})

OTP_SENT = schema_ref("OtpSent", {
    "type": "object",
    "required": ["object", "member_id", "channel", "expires_at", "delivered"],
    "properties": {
        "object": {"type": "string", "const": "otp"},
        "member_id": {"type": "string"},
        "channel": {"type": "string", "enum": ["email", "sms"]},
        "expires_at": {"type": "string", "format": "date-time"},
        "delivered": {"type": "boolean", "description": "false in test mode, where the code is always 000000"},
    },
})

OTP_VERIFIED = schema_ref("OtpVerification", {
    "type": "object",
    "required": ["object", "verified", "member"],
    "properties": {
        "object": {"type": "string", "const": "otp_verification"},
        "verified": {"type": "boolean", "const": True},
        "member": MEMBER,
    },
})

EMAIL = String(min_length=1, max_length=254, description="Email address; stored trimmed and lower-cased.",
               example="ana@example.com")
PHONE = String(min_length=1, max_length=32, description="Phone number with country code; stored in E.164.",
               example="+442079460958")
EXTERNAL_ID = String(min_length=1, max_length=128, description="Your own id for this member.")
NAME = String(max_length=120, description="Display name.")


def member_json(member: Member) -> dict:
    """A member as the API shows it."""
    return {
        "id": member.public_id,
        "object": "member",
        "mode": member.mode,
        "external_id": member.external_id,
        "name": member.name,
        "email": member.email,
        "phone": member.phone,
        "referral_code": member.referral_code,
        "verified": member.verified_at is not None,
        "verified_at": isoformat(member.verified_at),
        "created_at": isoformat(member.created_at),
        "updated_at": isoformat(member.updated_at),
    }


def member_or_404(call: ApiCall, member_id: str) -> Member:
    """The caller's member (own partner, own mode) or a 404."""
    member = members.find_member(call.partner_id, call.mode, member_id)
    if member is None:
        raise not_found("member", "member_id")
    return member


@endpoint(
    "POST", "/members", scope="member_write", summary="Create a member",
    body=Body({"external_id": String(min_length=1, max_length=128, nullable=True,
                                     description="Your own id for this member."),
               "name": NAME,
               "email": String(min_length=1, max_length=254, nullable=True, example="ana@example.com",
                               description="Email address; stored trimmed and lower-cased."),
               "phone": String(min_length=1, max_length=32, nullable=True, example="+442079460958",
                               description="Phone number with country code; stored in E.164.")},
              one_of_required=[("email", "phone")]),
    response=MEMBER, status=201,
    errors={409: "member_exists: another member of this mode has the email, phone or external_id"},
)
def create_member(call: ApiCall):
    """Create a member (at least one of email and phone); it gets a unique referral_code."""
    _, data = with_event(call.application, call.mode, "member.created",
                         lambda: members.create_member(call.partner_id, call.mode, call.body), member_json)
    return data, 201


@endpoint(
    "GET", "/members", scope="member_read", summary="List members",
    query=list_query({"email": EMAIL, "phone": PHONE, "external_id": EXTERNAL_ID}),
    response=list_of(MEMBER),
)
def list_members(call: ApiCall):
    """The members of the key's mode, newest first; filter by email, phone or external_id."""
    select = members.members_of(call.partner_id, call.mode)
    if "email" in call.query:
        select = select.where(Member.email == members.normalise_email(call.query["email"]))
    if "phone" in call.query:
        select = select.where(Member.phone == members.normalise_phone(call.query["phone"]))
    if "external_id" in call.query:
        select = select.where(Member.external_id == call.query["external_id"])
    return page(select, Member, call.query, serialize=member_json)


@endpoint(
    "GET", "/members/validate", scope="member_read", summary="Check whether a member exists",
    query=Query({"email": EMAIL, "phone": PHONE, "external_id": EXTERNAL_ID}),
    response=VALIDATION,
)
def validate_member(call: ApiCall):
    """By exactly one of email, phone or external_id: whether such a member exists, its id,
    and whether it is verified."""
    given = [name for name in ("email", "phone", "external_id") if name in call.query]
    if len(given) != 1:
        raise invalid_request("Give exactly one of email, phone and external_id.", given[1] if given else "email")
    member = members.find_by_contact(call.partner_id, call.mode, **{given[0]: call.query[given[0]]})
    return {
        "object": "member_validation",
        "valid": member is not None,
        "member_id": member.public_id if member else None,
        "verified": bool(member and member.verified_at is not None),
    }


@endpoint("GET", "/members/<member_id>", scope="member_read", summary="Get a member", response=MEMBER,
          errors={404: "No such member (in this mode)"})
def get_member(call: ApiCall, member_id):
    """One member of the key's mode."""
    return member_json(member_or_404(call, member_id))


@endpoint(
    "PATCH", "/members/<member_id>", scope="member_write", summary="Update a member",
    body=Body({"name": NAME,
               "email": String(min_length=1, max_length=254, nullable=True,
                               description="New email; null removes it (a member keeps email or phone)."),
               "phone": String(min_length=1, max_length=32, nullable=True,
                               description="New phone; null removes it (a member keeps email or phone)."),
               "external_id": String(min_length=1, max_length=128, nullable=True,
                                     description="Your own id; null removes it.")}),
    response=MEMBER,
    errors={404: "No such member (in this mode)", 409: "member_exists"},
)
def update_member(call: ApiCall, member_id):
    """Change a member's name, email, phone or external_id (only the fields sent)."""
    member = member_or_404(call, member_id)
    return with_event(call.application, call.mode, "member.updated",
                      lambda: members.update_member(member, call.body), member_json)[1]


@endpoint(
    "POST", "/members/<member_id>/otp", scope="member_write", summary="Send a one-time code",
    body=Body({"channel": Enum("email", "sms", description="How to deliver the 6-digit code.")},
              required=("channel",)),
    response=OTP_SENT,
    errors={404: "No such member (in this mode)",
            429: "otp_cooldown (one code per 30 s) or otp_rate_limited (5 an hour); see Retry-After",
            502: "otp_delivery_failed"},
    transactional=False,  # delivery waits on a mail server or SMS gateway; request_otp commits first
)
def send_otp(call: ApiCall, member_id):
    """Send a 6-digit code, valid 10 minutes, replacing any earlier one. In test mode
    nothing is sent and the code is always 000000."""
    sent = otp.request_otp(member_or_404(call, member_id), call.body["channel"])
    return {"object": "otp", "member_id": sent.member_id, "channel": sent.channel,
            "expires_at": isoformat(sent.expires_at), "delivered": sent.delivered}


@endpoint(
    "POST", "/members/<member_id>/otp/verify", scope="member_write", summary="Verify a one-time code",
    body=Body({"code": String(min_length=6, max_length=6, pattern="^[0-9]{6}$", description="The 6 digits.",
                              example="000000")},
              required=("code",)),
    response=OTP_VERIFIED,
    errors={404: "No such member (in this mode)"},
    description="Check the member's code (5 tries per code). Success uses the code up and marks the member "
                "verified; failures are 400 with code otp_incorrect, otp_expired, otp_not_found or "
                "otp_attempts_exceeded.",
)
def verify_otp(call: ApiCall, member_id):
    """Check a code; success marks the member verified."""
    member = member_or_404(call, member_id)
    _, data = with_event(call.application, call.mode, "member.verified",
                         lambda: otp.verify_otp(member, call.body["code"]), member_json)
    return {"object": "otp_verification", "verified": True, "member": data}
