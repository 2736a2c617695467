"""The rules of the platform, with no web framework in sight.

One module per subject: accounts, applications (App IDs, secrets, keys), catalog (the
program's cards and rewards), members, otp, ledger (stamps and cashback), claims,
referrals, audit, demo. A domain function owns its transaction, returns models, and
refuses with a `DomainError`; it imports neither Flask nor anything from `portal.web` or
`portal.api`. The API turns a DomainError into its JSON error shape in one place
(`portal.api.errors`), the portal into a form message or an error page in one place
(`portal.web`).
"""

from __future__ import annotations


class DomainError(Exception):
    """A rule refused the request.

    `kind` says what sort of refusal it is (and so which HTTP status the API answers):
    `invalid` (400), `not_found` (404), `conflict` (409), `rate_limited` (429, with
    `retry_after` seconds) or `unavailable` (502: an outside service such as a mail server
    failed). `code` is the API's error code, `field` the input at fault (a form field or
    the API's `param`), `message` a sentence for the person who has to fix it.
    """

    kind = "invalid"
    default_code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.field = field
        self.retry_after = retry_after


class Invalid(DomainError):
    """The input breaks a rule (a bad email, an unknown choice, too long a name)."""


class NotFound(DomainError):
    """The thing asked for does not exist for this caller."""

    kind = "not_found"
    default_code = "resource_missing"


class Conflict(DomainError):
    """The request is well formed but the current state refuses it (already decided,
    too low a balance, already exists)."""

    kind = "conflict"
    default_code = "conflict"


class RateLimited(DomainError):
    """Too many of these too fast; `retry_after` says when to try again."""

    kind = "rate_limited"
    default_code = "rate_limited"


class Unavailable(DomainError):
    """An outside service this needs (mail, SMS) did not do its part; retry later."""

    kind = "unavailable"
    default_code = "unavailable"
