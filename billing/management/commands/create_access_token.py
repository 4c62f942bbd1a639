"""Print a new management API access token for a user (only its hash is stored)."""

from django.core.management.base import BaseCommand, CommandError

from billing.accounts.access import find_user
from billing.models import AccessToken, User


class Command(BaseCommand):
    help = "Create a management API access token for USERNAME and print it (it is not shown again)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label to recognise the token by")

    def handle(self, *args, username: str, name: str, **options) -> None:
        try:
            user = find_user(username)
        except User.DoesNotExist as missing:
            raise CommandError(str(missing)) from None
        _, plain = AccessToken.issue(user, name=name)
        # The bare token, so scripts can capture it: TOKEN=$(manage.py create_access_token admin)
        self.stdout.write(plain)
