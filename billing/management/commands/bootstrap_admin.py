"""Create the first admin when the database has no user; print its credentials once."""

import secrets

from django.core.management.base import BaseCommand
from django.db import transaction

from billing import audit
from billing.accounts import users
from billing.models import AccessToken, User

FIRST_ADMIN_QUOTA = 100_000_000  # $200 at 500 000 quota per USD


class Command(BaseCommand):
    help = "Create the first admin (username admin) when there is no user yet, and print its credentials."

    def handle(self, *args, **options) -> None:
        if User.objects.exists():
            self.stdout.write("users exist: no admin created")
            return
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            admin = User.objects.create_superuser("admin", password=password, quota=FIRST_ADMIN_QUOTA)
            audit.created(audit.System.MANAGE_PY, users.AUDITED, admin)
            _, token = AccessToken.issue(admin, name="first admin")
        self.stdout.write(
            "created the first admin -- shown only this once:\n"
            f"  username: admin\n  password: {password}\n  management access token: {token}\n"
            "  admin: /admin/   management API: /api/docs"
        )
