"""Any change to a channel row invalidates the routing index on every instance."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from channels_app import routing
from channels_app.models import Channel


@receiver(post_save, sender=Channel)
@receiver(post_delete, sender=Channel)
def channel_changed(**_kwargs) -> None:
    routing.invalidate()
