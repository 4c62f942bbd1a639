"""The Responses API's calls besides creating a response: never billed, no consume log.

- On a stored response (`GET`/`DELETE /v1/responses/{id}`, `POST .../cancel`, `GET .../input_items`): only the
  key that created it may make them (relay.stored_responses), and they go to the channel that stores it, as the
  client sent them (method, path, query, body); any other key, or an id the gateway never passed through, gets
  OpenAI's 404. A response deleted upstream is forgotten here too.
- `POST /v1/responses/input_tokens`: counted here with tiktoken, whatever channel would serve the model.
"""

import asyncio

import orjson
from django.http import HttpRequest, HttpResponse

from channels_app import routing
from gateway_project.db import run_db
from relay import service, stored_responses, tokenizer
from relay.adaptors.base import OPENAI_STORED_RESPONSE, RelayRequest
from relay.count_tokens import asked
from relay.endpoints import load_body, require_model
from relay.errors import RelayError
from relay.formats import responses_convert
from relay.formats.openai_responses import RESPONSES


async def stored_response(request: HttpRequest, response_id: str) -> HttpResponse:
    key, _ = await service.authenticate(RESPONSES.credential(request), request)
    channel_id = await run_db(stored_responses.owner_channel, response_id, key.token_id)
    index = await routing.aget_index()
    channel = index.by_id.get(channel_id) if channel_id is not None else None
    if channel is None:
        raise RelayError(404, f"Response with id '{response_id}' not found.", param="response_id")
    raw = service.read_body(request)
    native = RelayRequest(
        OPENAI_STORED_RESPONSE,
        "",
        {},
        raw,
        False,
        False,
        request.get_full_path(),
        passthrough=True,
        method=request.method,
    )
    answer = await asked(channel, native)
    if request.method == "DELETE":
        await run_db(stored_responses.forget, response_id)
    return answer


async def input_tokens(request: HttpRequest) -> HttpResponse:
    key, _ = await service.authenticate(RESPONSES.credential(request), request)
    body = load_body(service.read_body(request))
    model = require_model(body)
    service.check_model(key, model)
    tokens = await asyncio.to_thread(responses_convert.prompt_tokens, body, tokenizer.Tokens(model))
    answer = {"object": "response.input_tokens", "input_tokens": tokens}
    return HttpResponse(orjson.dumps(answer), content_type="application/json")
