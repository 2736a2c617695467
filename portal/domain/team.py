"""A partner's team: invites, roles and removal (DESIGN.md §10).

- An invite is a single-use link for one email and one role (Admin, Developer or Viewer),
  valid for 7 days; the token is random, stored only as its SHA-256, and shown once.
- Owners manage everyone; admins manage admins, developers and viewers, and never an
  owner, nor make anyone one (portal.domain.roles.may_manage).
- The last owner of a team can be neither demoted nor removed. The check and the change
  run in one write transaction (the partner's owners locked on PostgreSQL), so two
  owners demoting each other at once cannot leave the team without one.
- Removing a user deletes them (their sessions go with them, so an open page of theirs
  is signed out on its next request); what they did stays in the audit log under their
  email.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

import peewee

from portal.db import database, lock_for_update, write_transaction
from portal.domain import Conflict, Invalid, NotFound, audit
from portal.domain.accounts import check_password_policy, normalise_email, passwords
from portal.domain.roles import ROLE_LABELS, check_role, may_manage
from portal.domain.sessions import token_hash
from portal.mail import send_mail
from portal.models import Partner, TeamInvite, User, utcnow

INVITE_LIFETIME = timedelta(days=7)
INVITE_ROLES = ("admin", "developer", "viewer")


@dataclass(frozen=True)
class NewInvite:
    invite: TeamInvite
    token: str  # the link's secret part, shown once


def members_of(partner) -> list[User]:
    """The team: owners first, then by role, then by email."""
    order = peewee.Case(User.role, [("owner", 0), ("admin", 1), ("developer", 2), ("viewer", 3)], 4)
    return list(User.select().where(User.partner == partner).order_by(order, User.email))


def pending_invites(partner) -> list[TeamInvite]:
    """Invites not used yet and not expired, newest first."""
    return list(TeamInvite.select()
                .where((TeamInvite.partner == partner) & TeamInvite.used_at.is_null()
                       & (TeamInvite.expires_at > utcnow()))
                .order_by(TeamInvite.created_at.desc()))


def teammate(partner, user_id) -> User | None:
    """A user of this partner's team by id, or None (another partner's user looks like none)."""
    try:
        user_id = int(user_id)
    except (TypeError, ValueError):
        return None
    return User.get_or_none((User.id == user_id) & (User.partner == partner))


def _partner_id(partner) -> int:
    return partner.id if isinstance(partner, Partner) else int(partner)


# -- invites --------------------------------------------------------------------------------


def invite_teammate(by: User, email: str, role: str) -> NewInvite:
    """Invite `email` to `by`'s team with `role`; returns the invite and its token."""
    email = normalise_email(email)
    if role not in INVITE_ROLES:
        raise Invalid("Choose a role: Admin, Developer or Viewer.", field="role")
    if not may_manage(by.role, role):
        raise Invalid(f"Your role cannot invite a {ROLE_LABELS[role].lower()}.", field="role")
    if User.select().where((User.partner == by.partner_id) & (User.email == email)).exists():
        raise Conflict(f"{email} is already on your team.", field="email")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with database.atomic():
        # A new invite to the same email replaces an older one still pending.
        TeamInvite.delete().where((TeamInvite.partner == by.partner_id) & (TeamInvite.email == email)
                                  & TeamInvite.used_at.is_null()).execute()
        invite = TeamInvite.create(partner=by.partner_id, email=email, role=role, token_hash=token_hash(token),
                                   invited_by=by, created_at=now, expires_at=now + INVITE_LIFETIME)
        audit.record("team.invited", user=by, target=email, detail=f"as {role}")
    return NewInvite(invite, token)


def email_invite(invite: TeamInvite, link: str) -> None:
    """Send the invite link to the invitee (when mail is configured; raises MailError)."""
    inviter = invite.invited_by.email if invite.invited_by_id else "Your team"
    partner = Partner.get_by_id(invite.partner_id)
    send_mail(invite.email, f"Join {partner.name} on Loyalty Partners", (
        f"{inviter} invited you to join {partner.name} on Loyalty Partners as {ROLE_LABELS[invite.role]}.\n\n"
        f"Choose a password and join here (the link works once, until "
        f"{invite.expires_at.strftime('%-d %b %Y, %H:%M UTC')}):\n{link}\n\n"
        "If you did not expect this, ignore this email."
    ))


def cancel_invite(by: User, invite_id) -> TeamInvite:
    """Withdraw a pending invite of `by`'s team (its link stops working)."""
    try:
        invite_id = int(invite_id)
    except (TypeError, ValueError):
        raise NotFound("There is no such invite.") from None
    invite = TeamInvite.get_or_none((TeamInvite.id == invite_id) & (TeamInvite.partner == by.partner_id))
    if invite is None or invite.used_at is not None:
        raise NotFound("There is no such invite; it may have been used or withdrawn already.")
    if not may_manage(by.role, invite.role):
        raise Invalid("Your role cannot withdraw this invite.")
    with database.atomic():
        TeamInvite.delete().where(TeamInvite.id == invite.id).execute()
        audit.record("team.invite_cancelled", user=by, target=invite.email, detail=f"as {invite.role}")
    return invite


def invite_for_token(token: str) -> TeamInvite:
    """The live invite of a link's token; Invalid/NotFound with a sentence saying why not."""
    digest = token_hash(token)
    invite = (TeamInvite.select(TeamInvite, Partner).join(Partner)
              .where(TeamInvite.token_hash == digest).first()) if token else None
    if invite is None or not hmac.compare_digest(invite.token_hash, digest):
        raise NotFound("This invite link is not valid. Check that you copied all of it, or ask for a new invite.",
                       code="invite_invalid")
    if invite.used_at is not None:
        raise Conflict("This invite link has been used already. Log in, or ask for a new invite.",
                       code="invite_used")
    if invite.expires_at <= utcnow():
        raise Conflict("This invite link has expired (invites last 7 days). Ask your team for a new one.",
                       code="invite_expired")
    return invite


def accept_invite(token: str, password: str) -> User:
    """Join the team of an invite with a new password; the invite is used up."""
    invite = invite_for_token(token)
    if User.select().where(User.email == invite.email).exists():
        raise Conflict("This email already has an account on this platform, so it cannot join another team. "
                       "Ask your team to invite a different email address.", code="account_exists")
    check_password_policy(password)
    password_hash = passwords().hash(password)
    now = utcnow()
    try:
        with write_transaction():
            used = (TeamInvite.update(used_at=now)
                    .where((TeamInvite.id == invite.id) & TeamInvite.used_at.is_null()
                           & (TeamInvite.expires_at > now)).execute())
            if not used:
                raise Conflict("This invite link has been used already. Log in, or ask for a new invite.",
                               code="invite_used")
            user = User.create(partner=invite.partner_id, email=invite.email, password_hash=password_hash,
                               role=invite.role, created_at=now, password_changed_at=now)
            audit.record("team.joined", user=user, target=invite.email, detail=f"as {invite.role}")
    except peewee.IntegrityError:
        raise Conflict("This email already has an account on this platform, so it cannot join another team.",
                       code="account_exists") from None
    return user


# -- roles and removal ----------------------------------------------------------------------


def _lock_owners(partner_id: int) -> int:
    """Lock the partner's owners (PostgreSQL; SQLite's write transaction already serialises
    writers) and count them."""
    owners = lock_for_update(User.select(User.id).where((User.partner == partner_id) & (User.role == "owner")))
    return len(list(owners))


def change_role(by: User, user_id, role: str) -> User:
    """Give a teammate another role, within what `by` may manage."""
    check_role(role)
    with write_transaction():
        target = teammate(by.partner_id, user_id)
        if target is None:
            raise NotFound("There is no such user on your team.")
        actor = User.get_by_id(by.id)  # as stored now, not as the page was
        if not may_manage(actor.role, target.role) or not may_manage(actor.role, role):
            raise Invalid("Only an owner can change an owner's role or make someone an owner.", field="role",
                          code="forbidden")
        if target.role == role:
            return target
        if target.role == "owner" and _lock_owners(by.partner_id) <= 1:
            raise Conflict(f"{target.email} is the team's last owner. Make someone else an owner first.",
                           code="last_owner", field="role")
        User.update(role=role).where(User.id == target.id).execute()
        audit.record("team.role_changed", user=by, target=target.email, detail=f"{target.role} → {role}")
    return User.get_by_id(target.id)


def remove_teammate(by: User, user_id) -> User:
    """Take a user off the team; their sessions end with them."""
    with write_transaction():
        target = teammate(by.partner_id, user_id)
        if target is None:
            raise NotFound("There is no such user on your team.")
        actor = User.get_by_id(by.id)
        if not may_manage(actor.role, target.role):
            raise Invalid("Only an owner can remove an owner.", code="forbidden")
        if target.role == "owner" and _lock_owners(by.partner_id) <= 1:
            raise Conflict(f"{target.email} is the team's last owner and cannot be removed.", code="last_owner")
        if target.id == actor.id:
            raise Conflict("You cannot remove yourself. Ask another owner or admin.", code="self_removal")
        audit.record("team.removed", user=by, target=target.email, detail=f"was {target.role}")
        User.delete().where(User.id == target.id).execute()
    return target
