"""Custom channels: the channel's base URL is the full upstream URL, called as is in OpenAI format.

`{model}` in the URL is replaced by the upstream model name, percent-encoded as one path segment.
"""

from channels_app.routing import ChannelInfo
from gateway_project.safe_text import model_path_segment
from relay.adaptors.base import RelayRequest
from relay.adaptors.openai import OpenAIAdaptor


class CustomAdaptor(OpenAIAdaptor):
    slug = "custom"

    def url(self, request: RelayRequest, channel: ChannelInfo) -> str:
        return channel.base_url.replace("{model}", model_path_segment(channel.upstream_model(request.model)))
