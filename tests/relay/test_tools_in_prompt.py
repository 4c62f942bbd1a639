"""Tool definitions are part of the prompt the model reads: when the upstream reports no usage, `tools` (or
the older `functions`) count in the prompt as their JSON, and the reservation's byte bound holds their bytes."""

import math

import orjson
import pytest

from billing.models import Log, Reservation
from relay.tokenizer import Tokens, count_messages, utf8_bytes
from tests.support.fakes.openai_upstream import Behaviour
from tests.support.relay_client import consume_log, post_chat, sse_payloads

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [{"role": "user", "content": "What is the weather in Lisbon?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_weather",
            "description": "Current weather for a city, with the temperature in degrees Celsius",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
FUNCTIONS = [TOOLS[0]["function"]]


def prompt(measure, definitions: list) -> int:
    return count_messages(MESSAGES, measure) + measure(orjson.dumps(definitions).decode())


@pytest.mark.parametrize("field", ["tools", "functions"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_tools_count_in_the_prompt_when_the_upstream_reports_no_usage(
    alice_key, openai_channel, fake_openai, field, stream
):
    definitions = TOOLS if field == "tools" else FUNCTIONS
    fake_openai.script.append(Behaviour(usage=False))
    response = await post_chat(
        alice_key, {"model": "gpt-4o", "messages": MESSAGES, field: definitions, "stream": stream}
    )
    assert response.status_code == 200, response.content
    if stream:
        await sse_payloads(response)
    log = await consume_log(response["X-Request-Id"])
    assert "counted locally" in log.content
    assert log.prompt_tokens == prompt(Tokens("gpt-4o"), definitions)


async def test_the_reservations_byte_bound_holds_the_tools(alice_key, openai_channel, fake_openai):
    response = await post_chat(alice_key, {"model": "gpt-4o", "messages": MESSAGES, "tools": TOOLS, "max_tokens": 10})
    assert response.status_code == 200, response.content
    reservation = await Reservation.objects.aget(request_id=response["X-Request-Id"])
    # gpt-4o: (prompt + max_tokens x completion ratio 4) x model ratio 1.25
    assert reservation.amount == math.ceil((prompt(utf8_bytes, TOOLS) + 10 * 4) * 1.25)


async def test_an_upstream_that_reports_usage_is_billed_by_it_whatever_the_tools(
    alice_key, openai_channel, fake_openai
):
    response = await post_chat(alice_key, {"model": "gpt-4o", "messages": MESSAGES, "tools": TOOLS})
    log = await Log.objects.aget(request_id=response["X-Request-Id"])
    assert log.content.startswith("usage reported by upstream")
    assert log.prompt_tokens == 12  # the fake upstream's figure
