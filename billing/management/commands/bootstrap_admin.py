"""Create the first admin when the database has no user; print its credentials once, and where to go."""

import secrets

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.translation import gettext as _

from billing import audit
from billing.accounts import users
from billing.models import AccessToken, User

FIRST_ADMIN_QUOTA = 100_000_000  # $200 at 500 000 quota per USD


class Command(BaseCommand):
    help = (
        "Create the first admin (username admin) when there is no user yet and print its credentials once; "
        "then print the gateway's addresses."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=3000, help="the port the gateway will listen on")

    def handle(self, *args, **options) -> None:
        if User.objects.exists():
            self.stdout.write(_("users exist: no admin created"))
        else:
            self.create_first_admin()
        self.stdout.write(where_to_go(options["port"]))

    def create_first_admin(self) -> None:
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            admin = User.objects.create_superuser("admin", password=password, quota=FIRST_ADMIN_QUOTA)
            audit.created(audit.System.MANAGE_PY, users.AUDITED, admin)
            token = AccessToken.issue(admin, name="first admin")[1]
        self.stdout.write(
            _(
                "created the first admin -- shown only this once:\n"
                "  username: admin\n  password: %(password)s\n  management access token: %(token)s\n"
            )
            % {"password": password, "token": token}
        )


def where_to_go(port: int) -> str:
    site = f"http://localhost:{port}"
    return _(
        "the gateway will answer at:\n"
        "  OpenAI base URL (for apps): %(site)s/v1\n"
        "  user console:               %(site)s/console/\n"
        "  admin:                      %(site)s/admin/\n"
        "  management API docs:        %(site)s/api/docs\n"
        "lost the admin's password? manage.py changepassword admin (README, first lines)"
    ) % {"site": site}
