"""Custom channels: the channel's base URL is the full upstream URL, called as is in OpenAI format.

`{model}` in the URL is replaced by the upstream model name.
"""

from channels_app.routing import ChannelInfo
from relay.adaptors.base import RelayRequest
from relay.adaptors.openai import OpenAIAdaptor


class CustomAdaptor(OpenAIAdaptor):
    slug = "custom"

    def url(self, request: RelayRequest, channel: ChannelInfo) -> str:
        return channel.base_url.replace("{model}", channel.upstream_model(request.model))
