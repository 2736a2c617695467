"""Webhooks (#12): endpoints, the events outbox, deliveries, their attempts, and the
delivery worker's heartbeat."""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    @migrator.create_model
    class WebhookEndpoint(pw.Model):
        id = pw.AutoField()
        public_id = pw.CharField(max_length=24, unique=True)
        application = pw.ForeignKeyField(column_name='application_id', field='id', model=migrator.orm['application'], on_delete='CASCADE')
        mode = pw.CharField(max_length=4)
        url = pw.TextField()
        description = pw.CharField(default='', max_length=200)
        event_types = pw.TextField(default='')
        secret_ciphertext = pw.TextField()
        previous_secret_ciphertext = pw.TextField(null=True)
        previous_secret_expires_at = pw.DateTimeField(null=True)
        enabled = pw.BooleanField(default=True)
        disabled_reason = pw.TextField(default='')
        disabled_at = pw.DateTimeField(null=True)
        failing_since = pw.DateTimeField(null=True)
        created_at = pw.DateTimeField()
        created_by = pw.ForeignKeyField(column_name='created_by_id', field='id', model=migrator.orm['user'], null=True, on_delete='SET NULL')

        class Meta:
            table_name = "webhook_endpoint"

    @migrator.create_model
    class WebhookEvent(pw.Model):
        id = pw.AutoField()
        public_id = pw.CharField(max_length=24, unique=True)
        application = pw.ForeignKeyField(column_name='application_id', field='id', model=migrator.orm['application'], on_delete='CASCADE')
        mode = pw.CharField(max_length=4)
        type = pw.CharField(max_length=40)
        body = pw.TextField()
        created_at = pw.DateTimeField(index=True)

        class Meta:
            table_name = "webhook_event"

    @migrator.create_model
    class WebhookDelivery(pw.Model):
        id = pw.AutoField()
        event = pw.ForeignKeyField(column_name='event_id', field='id', model=migrator.orm['webhook_event'], on_delete='CASCADE')
        endpoint = pw.ForeignKeyField(column_name='endpoint_id', field='id', model=migrator.orm['webhook_endpoint'], on_delete='CASCADE')
        status = pw.CharField(default='pending', max_length=12)
        attempts = pw.IntegerField(default=0)
        next_attempt_at = pw.DateTimeField(null=True)
        locked_until = pw.DateTimeField(null=True)
        lease_token = pw.CharField(max_length=32, null=True)
        last_status_code = pw.IntegerField(null=True)
        last_error = pw.TextField(default='')
        created_at = pw.DateTimeField()
        finished_at = pw.DateTimeField(null=True)

        class Meta:
            table_name = "webhook_delivery"
            indexes = [(('status', 'next_attempt_at'), False)]

    @migrator.create_model
    class DeliveryAttempt(pw.Model):
        id = pw.AutoField()
        delivery = pw.ForeignKeyField(column_name='delivery_id', field='id', model=migrator.orm['webhook_delivery'], on_delete='CASCADE')
        number = pw.IntegerField()
        started_at = pw.DateTimeField()
        succeeded = pw.BooleanField(default=False)
        status_code = pw.IntegerField(null=True)
        latency_ms = pw.IntegerField(default=0)
        response_excerpt = pw.TextField(default='')
        error = pw.TextField(default='')

        class Meta:
            table_name = "delivery_attempt"

    @migrator.create_model
    class WorkerHeartbeat(pw.Model):
        id = pw.AutoField()
        worker = pw.CharField(max_length=120, unique=True)
        last_seen_at = pw.DateTimeField()

        class Meta:
            table_name = "worker_heartbeat"


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model('worker_heartbeat')

    migrator.remove_model('delivery_attempt')

    migrator.remove_model('webhook_delivery')

    migrator.remove_model('webhook_event')

    migrator.remove_model('webhook_endpoint')
