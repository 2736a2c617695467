"""Teams and account security (#10): team invites, server-side sessions, two-factor
authentication with recovery codes, password resets, and the attempts table that
throttles log-ins across server processes.

Existing accounts need nothing else: every user so far is the only user of their partner,
created as its owner. The data step below makes sure of it (an unknown role becomes
owner, and a partner without an owner gets its first user as one).
"""

import peewee as pw
from peewee_migrate import Migrator

ROLES = ("owner", "admin", "developer", "viewer")


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields(
        "user",
        totp_secret=pw.TextField(null=True),
        totp_enabled_at=pw.DateTimeField(null=True),
        totp_last_step=pw.BigIntegerField(null=True),
        password_changed_at=pw.DateTimeField(null=True),
    )

    @migrator.create_model
    class TeamInvite(pw.Model):
        id = pw.AutoField()
        partner = pw.ForeignKeyField(column_name='partner_id', field='id', model=migrator.orm['partner'], on_delete='CASCADE')
        email = pw.CharField(max_length=254)
        role = pw.CharField(max_length=16)
        token_hash = pw.CharField(max_length=64, unique=True)
        invited_by = pw.ForeignKeyField(column_name='invited_by_id', field='id', model=migrator.orm['user'], null=True, on_delete='SET NULL')
        created_at = pw.DateTimeField()
        expires_at = pw.DateTimeField()
        used_at = pw.DateTimeField(null=True)

        class Meta:
            table_name = "team_invite"

    @migrator.create_model
    class UserSession(pw.Model):
        id = pw.AutoField()
        user = pw.ForeignKeyField(column_name='user_id', field='id', model=migrator.orm['user'], on_delete='CASCADE')
        token_hash = pw.CharField(max_length=64, unique=True)
        created_at = pw.DateTimeField()
        last_seen_at = pw.DateTimeField()
        ip = pw.CharField(default='', max_length=64)
        user_agent = pw.CharField(default='', max_length=200)

        class Meta:
            table_name = "user_session"

    @migrator.create_model
    class RecoveryCode(pw.Model):
        id = pw.AutoField()
        user = pw.ForeignKeyField(column_name='user_id', field='id', model=migrator.orm['user'], on_delete='CASCADE')
        code_hash = pw.CharField(max_length=64)
        created_at = pw.DateTimeField()
        used_at = pw.DateTimeField(null=True)

        class Meta:
            table_name = "recovery_code"
            indexes = [(('user', 'code_hash'), True)]

    @migrator.create_model
    class PasswordReset(pw.Model):
        id = pw.AutoField()
        user = pw.ForeignKeyField(column_name='user_id', field='id', model=migrator.orm['user'], on_delete='CASCADE')
        token_hash = pw.CharField(max_length=64, unique=True)
        created_at = pw.DateTimeField()
        expires_at = pw.DateTimeField()
        used_at = pw.DateTimeField(null=True)

        class Meta:
            table_name = "password_reset"

    @migrator.create_model
    class Attempt(pw.Model):
        id = pw.AutoField()
        kind = pw.CharField(max_length=24)
        subject = pw.CharField(max_length=64)
        created_at = pw.DateTimeField()

        class Meta:
            table_name = "attempt"
            indexes = [(('kind', 'subject', 'created_at'), False)]

    roles = ", ".join(f"'{role}'" for role in ROLES)
    migrator.sql(f'UPDATE "user" SET role = \'owner\' WHERE role NOT IN ({roles})')
    migrator.sql(
        'UPDATE "user" SET role = \'owner\' WHERE id IN ('
        ' SELECT MIN(u.id) FROM "user" u WHERE NOT EXISTS ('
        '  SELECT 1 FROM "user" o WHERE o.partner_id = u.partner_id AND o.role = \'owner\')'
        ' GROUP BY u.partner_id)'
    )


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model('attempt')

    migrator.remove_model('password_reset')

    migrator.remove_model('recovery_code')

    migrator.remove_model('user_session')

    migrator.remove_model('team_invite')

    migrator.remove_fields('user', 'totp_secret', 'totp_enabled_at', 'totp_last_step', 'password_changed_at')
