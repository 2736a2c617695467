"""Operating it (#14): operators are users without a partner.

An operator (`loyalty-portal create-operator`) logs in like anyone else — one log-in, one
session table, one two-factor and throttle path — but belongs to no partner, so the
user's partner becomes optional. Partners gain two statuses besides `active` and
`suspended` that need no schema: `pending` (LOYALTY_SIGNUP=approval, until approved).

On SQLite making a column nullable rebuilds the table; `portal.db.migrate` runs
migrations with foreign-key enforcement off (SQLite's documented way to rebuild a table
that others reference) so rebuilding `user` cascades nothing into sessions or keys.
"""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.drop_not_null("user", "partner")


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.sql('DELETE FROM "user" WHERE partner_id IS NULL')
    migrator.add_not_null("user", "partner")
