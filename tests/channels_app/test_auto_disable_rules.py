"""No client can disable a channel. Auto-disable reads what a client cannot steer: the status (401; a 403
only with the provider's structured code) and the error fields each adaptor knows for its provider; never
a message, which may quote the client's input, and never a 400."""

import orjson
import pytest

from channels_app import healing
from channels_app.models import Channel
from relay.adaptors.anthropic import AnthropicAdaptor
from relay.adaptors.gemini import GeminiAdaptor
from relay.adaptors.openai import OpenAIAdaptor
from relay.adaptors.zhipu import ZhipuAdaptor
from tests.support.factories import make_channel
from tests.support.fakes import gemini_upstream, zhipu_upstream
from tests.support.fakes.openai_upstream import Behaviour
from tests.support.fakes.recording import Behaviour as ProviderBehaviour
from tests.support.fakes.recording import served
from tests.support.fakes.zhipu_upstream import FakeZhipu
from tests.support.relay_client import post_chat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

fake_zhipu_server, fake_zhipu = served(FakeZhipu, "fake_zhipu")
GLM_HI = {"model": "glm-4", "messages": [{"role": "user", "content": "hi"}]}


def upstream_error(status: int, **error) -> Behaviour:
    return Behaviour(status=status, body={"error": error})


async def status_of(channel: Channel) -> str:
    return (await Channel.objects.aget(pk=channel.pk)).status


# An upstream's 400 quotes the request: what a client writes must not take the channel from everyone.
QUOTING_THE_CLIENT = [
    "Invalid value for 'role': 'permission denied' is not one of ['system', 'assistant', 'user']",
    "Unrecognized request argument supplied: invalid api key",
    "'You exceeded your current quota' is not a valid value for 'tool_choice'",
]


@pytest.mark.parametrize("message", QUOTING_THE_CLIENT)
async def test_an_upstream_400_quoting_the_client_does_not_disable_the_channel(
    message, alice_key, openai_channel, fake_openai
):
    fake_openai.script.append(upstream_error(400, message=message, type="invalid_request_error"))
    response = await post_chat(alice_key)
    assert response.status_code == 400
    assert await status_of(openai_channel) == Channel.Status.ENABLED


async def test_a_400_never_disables_even_with_a_dead_account_code(alice_key, openai_channel, fake_openai):
    fake_openai.script.append(upstream_error(400, message="Incorrect API key provided", code="invalid_api_key"))
    assert (await post_chat(alice_key)).status_code == 400
    assert await status_of(openai_channel) == Channel.Status.ENABLED


async def test_a_401_disables_the_channel(alice_key, openai_channel, fake_openai):
    fake_openai.script.append(upstream_error(401, message="Unauthorized"))
    assert (await post_chat(alice_key)).status_code == 401
    assert await status_of(openai_channel) == Channel.Status.AUTO_DISABLED


FORBIDDEN = [
    # error fields of a 403, whether they disable the channel
    ({"message": "Your account has been deactivated", "code": "account_deactivated"}, True),
    ({"message": "Permission denied"}, False),
    # a gateway upstream refusing a model its key may not use: the client picked the model
    ({"message": "model gpt-4o is not allowed for this key", "type": "permission_error"}, False),
]


@pytest.mark.parametrize("error, disables", FORBIDDEN, ids=["dead-account-code", "no-code", "model-refused"])
async def test_a_403_disables_only_with_a_structured_dead_account_code(
    error, disables, alice_key, openai_channel, fake_openai
):
    fake_openai.script.append(upstream_error(403, **error))
    assert (await post_chat(alice_key)).status_code == 403
    expected = Channel.Status.AUTO_DISABLED if disables else Channel.Status.ENABLED
    assert await status_of(openai_channel) == expected


async def test_openais_exhausted_quota_disables_the_channel(alice_key, openai_channel, fake_openai):
    quota = {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}
    fake_openai.script.append(upstream_error(429, **quota))
    assert (await post_chat(alice_key)).status_code == 429
    assert await status_of(openai_channel) == Channel.Status.AUTO_DISABLED


@pytest.fixture
def zhipu_channel(fake_zhipu: FakeZhipu, transactional_db) -> Channel:
    return make_channel(fake_zhipu.url, models=["glm-4"], key=zhipu_upstream.API_KEY, type="zhipu")


@pytest.fixture
def zhipu_channel_with_a_wrong_secret(fake_zhipu: FakeZhipu, transactional_db) -> Channel:
    key = f"{zhipu_upstream.API_ID}.not-the-signing-secret"
    return make_channel(fake_zhipu.url, models=["glm-4"], key=key, type="zhipu")


async def test_zhipus_refused_credential_disables_the_channel(alice_key, zhipu_channel_with_a_wrong_secret):
    response = await post_chat(alice_key, GLM_HI)
    assert response.status_code == 401
    assert orjson.loads(response.content)["error"]["code"] == "1000"
    assert await status_of(zhipu_channel_with_a_wrong_secret) == Channel.Status.AUTO_DISABLED


async def test_zhipus_account_in_arrears_disables_the_channel(alice_key, zhipu_channel, fake_zhipu):
    fake_zhipu.script.append(ProviderBehaviour(status=429, body=zhipu_upstream.IN_ARREARS))
    response = await post_chat(alice_key, GLM_HI)
    assert response.status_code == 429
    assert await status_of(zhipu_channel) == Channel.Status.AUTO_DISABLED


async def test_zhipus_codes_mean_nothing_from_another_provider(alice_key, openai_channel, fake_openai):
    fake_openai.script.append(Behaviour(status=429, body=zhipu_upstream.IN_ARREARS))
    assert (await post_chat(alice_key)).status_code == 429
    assert await status_of(openai_channel) == Channel.Status.ENABLED
    assert healing.Rests.streaks[openai_channel.pk].failures == 1  # a transient failure instead


# --- each adaptor reads its provider's structured fields ---


def test_zhipu_marks_its_authentication_and_arrears_codes_permanent():
    adaptor = ZhipuAdaptor()
    assert adaptor.parse_error(401, orjson.dumps(zhipu_upstream.AUTH_FAILED)).permanent
    assert adaptor.parse_error(429, orjson.dumps(zhipu_upstream.IN_ARREARS)).permanent
    assert not OpenAIAdaptor().parse_error(429, orjson.dumps(zhipu_upstream.IN_ARREARS)).permanent


@pytest.mark.parametrize(
    "status, kind, permanent",
    [
        (401, "authentication_error", True),
        (403, "permission_error", True),
        (402, "billing_error", True),
        (400, "invalid_request_error", False),
        (529, "overloaded_error", False),
    ],
)
def test_anthropic_marks_its_credential_and_billing_error_types_permanent(status, kind, permanent):
    body = {"type": "error", "error": {"type": kind, "message": "Your credit balance is too low"}}
    assert AnthropicAdaptor().parse_error(status, orjson.dumps(body)).permanent is permanent


def test_google_answers_a_dead_key_with_400_which_gemini_reads_as_a_permanent_401():
    failure = GeminiAdaptor().parse_error(400, orjson.dumps(gemini_upstream.BAD_KEY))
    assert (failure.status, failure.permanent, failure.message) == (401, True, gemini_upstream.BAD_KEY_MESSAGE)


def test_gemini_reads_permission_denied_as_permanent_and_a_message_alone_as_nothing():
    denied = {
        "error": {"code": 403, "message": "Permission denied on resource project p.", "status": "PERMISSION_DENIED"}
    }
    assert GeminiAdaptor().parse_error(403, orjson.dumps(denied)).permanent
    quoted = {"error": {"code": 400, "message": "API key not valid: 'x'", "status": "INVALID_ARGUMENT"}}
    failure = GeminiAdaptor().parse_error(400, orjson.dumps(quoted))
    assert (failure.status, failure.permanent) == (400, False)


@pytest.mark.parametrize(
    "status, flagged, permanent",
    [(401, False, True), (403, False, False), (403, True, True), (429, True, True), (400, True, False)],
)
def test_the_rule_is_401_or_a_flag_from_the_adaptor_and_never_400(status, flagged, permanent):
    assert healing.is_permanent(status, flagged) is permanent
