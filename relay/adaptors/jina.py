"""Jina AI: rerank and embeddings only, both in the format the gateway speaks (spec: rerank.md section 2).

The OpenAI adaptor already forwards Jina-format rerank and OpenAI-format embeddings; this adds Jina's
host and refuses chat, so a misconfigured model moves on to a channel that can serve it.
"""

from channels_app.channel_types import new_api
from channels_app.routing import ChannelInfo
from relay.adaptors.base import RelayRequest, UpstreamRequest
from relay.adaptors.openai import OpenAIAdaptor
from relay.adaptors.openai_format import require_endpoint

SLUG = "jina"


class JinaAdaptor(OpenAIAdaptor):
    slug = SLUG
    label = "Jina"
    old_types = (new_api(38),)
    default_base_url = "https://api.jina.ai"

    def build_request(self, request: RelayRequest, channel: ChannelInfo) -> UpstreamRequest:
        require_endpoint(request, SLUG, "rerank", "embeddings")
        return super().build_request(request, channel)

    def model_list_request(self, channel: ChannelInfo) -> UpstreamRequest | None:
        return None  # Jina has no model list
