"""Print a new `sk-` API key for a user."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from billing.accounts import api_keys
from billing.accounts.access import find_user
from billing.models import User
from gateway_project.errors import describe


class Command(BaseCommand):
    help = "Create an API key for USERNAME and print it (it is not shown again). Without --quota it is unlimited."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        limit = parser.add_mutually_exclusive_group()
        limit.add_argument("--quota", type=int, help="The key's own quota limit")
        limit.add_argument("--unlimited", action="store_true", help="No key limit (the user's quota still applies)")
        parser.add_argument("--name", default="", help="A label for the key")

    def handle(self, *args, username: str, quota: int | None, unlimited: bool, name: str, **options) -> None:
        try:
            user = find_user(username)
            _, plain = api_keys.create_key(
                user, name=name, remain_quota=quota or 0, unlimited_quota=unlimited or quota is None
            )
        except User.DoesNotExist as missing:
            raise CommandError(str(missing)) from None
        except ValidationError as invalid:
            raise CommandError(describe(invalid)) from None
        # The bare key, so scripts can capture it: KEY=$(manage.py token_create alice)
        self.stdout.write(plain)
