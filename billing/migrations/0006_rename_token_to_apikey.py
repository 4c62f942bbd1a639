# The model Token becomes ApiKey in the code only: its table stays billing_token, its columns and every
# foreign key to it stay as they are, so no row moves (state operations only).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0005_audit_entry'),
        # tasks.Task.token was declared against billing.Token: it must exist under that name when tasks
        # creates it on an empty database.
        ('tasks', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RenameModel(old_name='Token', new_name='ApiKey'),
                migrations.AlterModelOptions(name='apikey', options={'verbose_name': 'API key'}),
                migrations.AlterModelTable(name='apikey', table='billing_token'),
                migrations.AlterField(
                    model_name='apikey',
                    name='user',
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name='api_keys',
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
    ]
