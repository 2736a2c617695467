"""Every model, importable from one place: `from portal.models import ApiKey`."""

from portal.models.accounts import ApiKey, Application, AppSecret, AuditEvent, Invite, Partner, User
from portal.models.base import MODES, BaseModel, isoformat, new_public_id, utcnow
from portal.models.gate import IdempotencyRecord, Nonce
from portal.models.loyalty import Claim, LedgerEntry, Member, Otp, OtpSend, Redemption, Referral, StampBalance
from portal.models.program import Card, Program, Reward
from portal.models.request_log import RequestDayCount, RequestRecord
from portal.models.teams import Attempt, PasswordReset, RecoveryCode, TeamInvite, UserSession
from portal.models.webhooks import DeliveryAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent, WorkerHeartbeat

# In dependency order: what the migrations create (001_initial, then 002_teams, 003_request_log,
# 004_webhooks …).
ALL_MODELS = [
    Partner, User, Invite, Application, AppSecret, ApiKey, AuditEvent,
    Card, Reward, Program,
    Member, StampBalance, LedgerEntry, Redemption, Claim, Referral, Otp, OtpSend,
    Nonce, IdempotencyRecord,
    TeamInvite, UserSession, RecoveryCode, PasswordReset, Attempt,
    RequestRecord, RequestDayCount,
    WebhookEndpoint, WebhookEvent, WebhookDelivery, DeliveryAttempt, WorkerHeartbeat,
]

__all__ = [m.__name__ for m in ALL_MODELS] + [
    "ALL_MODELS", "MODES", "BaseModel", "isoformat", "new_public_id", "utcnow",
]
