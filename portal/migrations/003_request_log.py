"""The request log and its daily counts (#11, DESIGN.md §11): `request_record` holds one
row per /v1 request, `request_day_count` the per-day roll-up the usage views read."""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    @migrator.create_model
    class RequestRecord(pw.Model):
        id = pw.BigAutoField()
        created_at = pw.DateTimeField(index=True)
        request_id = pw.CharField(max_length=32, index=True)
        partner_id = pw.IntegerField(null=True)
        application_id = pw.IntegerField(null=True)
        api_key_id = pw.IntegerField(null=True)
        key_masked = pw.CharField(max_length=40, null=True)
        mode = pw.CharField(max_length=4, null=True)
        method = pw.CharField(max_length=10)
        route = pw.CharField(max_length=200, null=True)
        path = pw.CharField(max_length=1000)
        status = pw.SmallIntegerField()
        error_code = pw.CharField(max_length=64, null=True)
        error_message = pw.TextField(null=True)
        latency_ms = pw.FloatField()
        client_ip = pw.CharField(max_length=64)
        idempotency_key = pw.CharField(max_length=255, null=True)
        replayed = pw.BooleanField(default=False)
        user_agent = pw.CharField(max_length=300, null=True)
        canonical_string = pw.TextField(null=True)

        class Meta:
            table_name = "request_record"
            indexes = [(('application_id', 'created_at'), False), (('api_key_id', 'created_at'), False)]

    @migrator.create_model
    class RequestDayCount(pw.Model):
        id = pw.AutoField()
        application_id = pw.IntegerField()
        partner_id = pw.IntegerField()
        api_key_id = pw.IntegerField()
        mode = pw.CharField(max_length=4)
        day = pw.DateField()
        succeeded = pw.IntegerField(default=0)
        failed = pw.IntegerField(default=0)

        class Meta:
            table_name = "request_day_count"
            indexes = [(('application_id', 'day', 'api_key_id', 'mode'), True), (('partner_id', 'day'), False)]


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model('request_day_count')

    migrator.remove_model('request_record')
