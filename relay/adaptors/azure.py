"""Azure OpenAI: the OpenAI wire format on a deployment URL with an api-version and an `api-key` header.

The Responses API is not per deployment: its body names the deployment as its `model`. It is sent to the v1 API
(`{endpoint}/openai/v1/responses`, no api-version), unless the channel's `api_version` is one of the dated
versions that have it (RESPONSES_SINCE or later): then to `{endpoint}/openai/responses?api-version=...`.
"""

from channels_app.channel_types import both
from channels_app.routing import ChannelInfo
from gateway_project.safe_text import model_path_segment
from relay.adaptors.base import RelayRequest, UpstreamRequest
from relay.adaptors.openai import OpenAIAdaptor

DEFAULT_API_VERSION = "2024-10-21"
RESPONSES_SINCE = "2025-03-01-preview"  # the first dated api-version with the Responses API


def deployment_name(model: str) -> str:
    """Azure deployments cannot contain dots: gpt-3.5-turbo is deployed as gpt-35-turbo."""
    return model.replace(".", "")


class AzureAdaptor(OpenAIAdaptor):
    slug = "azure"
    label = "Azure OpenAI"
    old_types = (both(3),)
    default_base_url = ""

    def url(self, request: RelayRequest, channel: ChannelInfo) -> str:
        deployment = model_path_segment(deployment_name(channel.upstream_model(request.model)))
        api_version = channel.config.get("api_version") or DEFAULT_API_VERSION
        operation = request.path.removeprefix("/v1/")
        return f"{self.base_url(channel)}/openai/deployments/{deployment}/{operation}?api-version={api_version}"

    def responses_url(self, request: RelayRequest, channel: ChannelInfo) -> str:
        api_version = channel.config.get("api_version") or ""
        if not api_version[:4].isdigit() or api_version < RESPONSES_SINCE:
            return f"{self.base_url(channel)}/openai{request.path}"
        path = request.path.removeprefix("/v1")
        separator = "&" if "?" in path else "?"
        return f"{self.base_url(channel)}/openai{path}{separator}api-version={api_version}"

    def responses_model(self, request: RelayRequest, channel: ChannelInfo) -> str:
        return deployment_name(channel.upstream_model(request.model))

    def headers(self, channel: ChannelInfo) -> dict[str, str]:
        return {"api-key": channel.key}

    def model_list_request(self, channel: ChannelInfo) -> UpstreamRequest | None:
        return None  # Azure lists base models, not the deployments a channel calls
