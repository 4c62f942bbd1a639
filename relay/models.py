"""What the relay remembers between calls: who owns each response passed through to an upstream that stores it."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from gateway_project.labels import name_model


class StoredResponse(models.Model):
    """A Responses API response an upstream keeps (OpenAI, Azure): the key that created it, the only one that may
    retrieve, delete or cancel it or list its input, and the channel those calls go to. Deleted with the
    response when its client deletes it, and after the time OpenAI keeps a response (relay.stored_responses)."""

    response_id = models.CharField(max_length=191, unique=True)  # 191: a unique index MariaDB takes in utf8mb4
    token_id = models.IntegerField()
    channel_id = models.IntegerField()
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["created_at"])]  # the periodic clean-up's


name_model(
    StoredResponse,
    _("stored response"),
    _("stored responses"),
    response_id=_("response id"),
    token_id=_("token id"),
    channel_id=_("channel id"),
    created_at=_("created at"),
)
