from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing: users, keys, prices and logs"

    def ready(self) -> None:
        from billing.accounts import signals  # noqa: F401
