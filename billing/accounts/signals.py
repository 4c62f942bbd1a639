"""Changes to keys and users drop their cached auth entries (on every instance when the cache is Redis)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from billing.accounts import key_auth
from billing.models import ApiKey, User


@receiver(post_save, sender=ApiKey)
@receiver(post_delete, sender=ApiKey)
def key_changed(instance: ApiKey, **_kwargs) -> None:
    key_auth.forget_key(instance)


@receiver(post_save, sender=User)
def user_changed(instance: User, **_kwargs) -> None:
    key_auth.forget_user(instance)
