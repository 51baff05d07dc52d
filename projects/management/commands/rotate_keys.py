from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from portal import crypto
from portal.fields import EncryptedTextField


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted value with the first key of FIELD_ENCRYPTION_KEYS. "
        "Run after putting a new key first; then the old keys can be removed."
    )

    def handle(self, *args, **options):
        total = 0
        for model in apps.get_models():
            fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
            for field in fields:
                total += self._rotate(model, field)
        self.stdout.write(f"ROTATED={total}")

    @transaction.atomic
    def _rotate(self, model, field) -> int:
        # Raw SQL: the stored tokens are rotated as they are, never decoded
        # into model instances (and never printed).
        table = connection.ops.quote_name(model._meta.db_table)
        column = connection.ops.quote_name(field.column)
        pk = connection.ops.quote_name(model._meta.pk.column)
        count = 0
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {pk}, {column} FROM {table} WHERE {column} <> ''")  # noqa: S608
            rows = cursor.fetchall()
            for row_pk, token in rows:
                cursor.execute(
                    f"UPDATE {table} SET {column} = %s WHERE {pk} = %s",  # noqa: S608
                    [crypto.rotate(token), row_pk],
                )
                count += 1
        return count
