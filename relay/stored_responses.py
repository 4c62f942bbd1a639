"""Who owns each response an upstream stores (relay.models.StoredResponse): written when a passed-through
Responses call answers, read by the calls on a stored response and by `previous_response_id`.

What it costs a Responses call passed through: one INSERT (an upsert) before the client can read the id, unless
the request says `"store": false` (Codex CLI does); one indexed SELECT more when the request continues a previous
response. Chat and every other format never come here.
"""

from datetime import timedelta

from django.db import connection
from django.utils import timezone

from relay.models import StoredResponse

# OpenAI keeps a stored response 30 days; past that no call on it can succeed, so its row goes too.
KEPT_FOR = timedelta(days=30)


def remember(response_id: str, token_id: int, channel_id: int) -> None:
    """Note the key and the channel of a response; an id seen again (a channel that reuses ids) gets the latest."""
    row = StoredResponse(response_id=response_id, token_id=token_id, channel_id=channel_id)
    # MySQL and MariaDB upsert on any unique key and refuse to be told which; the others must be told.
    conflict = ["response_id"] if connection.features.supports_update_conflicts_with_target else None
    StoredResponse.objects.bulk_create(
        [row], update_conflicts=True, unique_fields=conflict, update_fields=["token_id", "channel_id", "created_at"]
    )


def owner_channel(response_id: str, token_id: int) -> int | None:
    """The channel that stores the response, when this key created it; None for another key's or an unknown id."""
    row = StoredResponse.objects.filter(response_id=response_id, token_id=token_id).values_list("channel_id").first()
    return row[0] if row else None


def forget(response_id: str) -> None:
    StoredResponse.objects.filter(response_id=response_id).delete()


def forget_expired() -> int:
    """Delete the rows of responses older than their upstream keeps them (a periodic job); how many went."""
    deleted, _ = StoredResponse.objects.filter(created_at__lt=timezone.now() - KEPT_FOR).delete()
    return deleted
