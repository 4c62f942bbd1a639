"""Custom channels: the channel's base URL is the full upstream URL, called as is in OpenAI format.

`{model}` in the URL is replaced by the upstream model name, percent-encoded as one path segment.
"""

from channels_app.channel_types import new_api, one_api
from channels_app.routing import ChannelInfo
from gateway_project.safe_text import model_path_segment
from relay.adaptors.base import RelayRequest, UpstreamRequest
from relay.adaptors.openai import OpenAIAdaptor

MINIMAX = ("https://api.minimax.chat", "/v1/text/chatcompletion_v2")  # one-api and new-api number it apart


class CustomAdaptor(OpenAIAdaptor):
    slug = "custom"
    label = "Custom full URL"
    old_types = (
        new_api(8),  # new-api: base_url is the full URL, `{model}` allowed -- as ours
        new_api(35, *MINIMAX),
        one_api(27, *MINIMAX),
        one_api(41, "https://api.novita.ai/v3/openai", "/chat/completions"),
    )

    def url(self, request: RelayRequest, channel: ChannelInfo) -> str:
        return channel.base_url.replace("{model}", model_path_segment(channel.upstream_model(request.model)))

    def model_list_request(self, channel: ChannelInfo) -> UpstreamRequest | None:
        return None  # the base URL is one endpoint, not an API root
