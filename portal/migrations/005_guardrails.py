"""Key guardrails (#13, DESIGN.md §13): allowed IPs, per-key rate limits, exposed keys and
expiry reminders on api_key; the fixed-window counters of the database rate limiter
(rate_counter); and what the OTP caps count on otp_send (application, mode, destination).

Existing keys keep working as before: no allowed IPs (anywhere), the mode's default limit.
"""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields(
        "api_key",
        allowed_ips=pw.TextField(default=""),
        rate_limit=pw.IntegerField(null=True),
        exposed_at=pw.DateTimeField(null=True),
        exposed_source=pw.TextField(null=True),
        expiry_reminded_at=pw.DateTimeField(null=True),
    )
    migrator.add_fields(
        "otp_send",
        application_id=pw.IntegerField(null=True),
        mode=pw.CharField(max_length=4, default=""),
        destination=pw.CharField(max_length=64, default=""),
    )
    migrator.add_index("otp_send", "application_id", "mode", "created_at")
    migrator.add_index("otp_send", "destination", "created_at")

    @migrator.create_model
    class RateCounter(pw.Model):
        id = pw.AutoField()
        subject = pw.CharField(max_length=80)
        window_start = pw.BigIntegerField(index=True)
        n = pw.IntegerField(default=0)

        class Meta:
            table_name = "rate_counter"
            indexes = [(("subject", "window_start"), True)]


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model("rate_counter")
    migrator.drop_index("otp_send", "destination", "created_at")
    migrator.drop_index("otp_send", "application_id", "mode", "created_at")
    migrator.remove_fields("otp_send", "application_id", "mode", "destination")
    migrator.remove_fields("api_key", "allowed_ips", "rate_limit", "exposed_at", "exposed_source",
                           "expiry_reminded_at")
