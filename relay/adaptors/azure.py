"""Azure OpenAI: the OpenAI wire format on a deployment URL with an api-version and an `api-key` header."""

from channels_app.channel_types import both
from channels_app.routing import ChannelInfo
from gateway_project.safe_text import model_path_segment
from relay.adaptors.base import RelayRequest, UpstreamRequest
from relay.adaptors.openai import OpenAIAdaptor

DEFAULT_API_VERSION = "2024-10-21"


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

    def headers(self, channel: ChannelInfo) -> dict[str, str]:
        return {"api-key": channel.key}

    def model_list_request(self, channel: ChannelInfo) -> UpstreamRequest | None:
        return None  # Azure lists base models, not the deployments a channel calls
