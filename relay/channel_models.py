"""The models a channel's upstream says it serves (admin's Fetch models): the provider's model list, asked
through the channel's adaptor (`model_list_request`, `model_names`) and sent by relay.exchange.send like every
other upstream call (the shared client, its timeouts and size limit); a failure's message is rid of the
channel's secrets before anyone sees it."""

from asgiref.sync import async_to_sync
from django.utils.translation import gettext as _

from channels_app import channel_types
from channels_app.models import Channel
from channels_app.routing import channel_info
from relay.adaptors.base import Adaptor, UpstreamFailed, UpstreamRequest
from relay.adaptors.registry import adaptor_for
from relay.exchange import overridden, scrubbed, send

TIMEOUT_SECONDS = 15.0


class NoModelList(Exception):
    """The models cannot be listed; the message says why and holds no secret of the channel."""


def fetch_models(channel: Channel) -> list[str]:
    """The upstream's model names, sorted, without repeats (the adaptor's default list for a provider that has
    none to ask). NoModelList when there is no list, the key cannot be read, or the upstream did not answer."""
    adaptor = adaptor_for(channel.type)
    try:
        info = channel_info(channel)
    except ValueError as unreadable:
        raise NoModelList(str(unreadable)) from None
    request = adaptor.model_list_request(info) if adaptor else None
    if adaptor is not None and request is None and adaptor.default_models:
        return sorted(adaptor.default_models)
    if adaptor is None or request is None:
        kind = channel_types.find(channel.type)
        provider = kind.label if kind else channel.type
        raise NoModelList(_("%(provider)s channels have no model list to fetch.") % {"provider": provider})
    request = overridden(request, info.config)
    try:
        content = async_to_sync(_get)(request, adaptor)
        names = adaptor.model_names(content)
    except UpstreamFailed as failed:
        message = _("The upstream did not list its models: %(reason)s") % {"reason": failed.failure.message}
        raise NoModelList(scrubbed(message, info, request)) from None
    return sorted(set(names))


async def _get(request: UpstreamRequest, adaptor: Adaptor) -> bytes:
    response = await send(request, timeout=TIMEOUT_SECONDS)
    if response.status_code >= 400:
        failure = adaptor.parse_error(response.status_code, response.content)
        failure.message = f"{response.status_code} {failure.message}"
        raise UpstreamFailed(failure)
    return response.content
