"""Property tests of the relay: whatever a client sends, the answer is a 4xx in OpenAI's error shape (or a
2xx when the request happens to be valid), never a 5xx, and no quota is lost or left held.

Requests go through the production routing in process (tests.support.asgi_harness.Gateway) to the fake OpenAI
upstream, whose channel serves every model (`*`), so a valid request of any model really is relayed and
billed; chat for Claude, Gemini, Cohere, Ollama and GLM models goes through those adaptors' conversions
to their fakes. After every case: no reservation is held, each key's and user's remaining plus used quota is what
they started with, the consume logs add up to what was charged, and an answered request has exactly one
consume log while a refused one has none.
"""

import asyncio
import base64
import json
import struct
import zlib
from dataclasses import dataclass, field
from datetime import timedelta

import orjson
import pytest
from django.db.models import Sum
from django.test import override_settings
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from billing.models import ApiKey, Log, Reservation, User
from tests.support.asgi_harness import Answer, Gateway
from tests.support.factories import ALICE_QUOTA, make_channel, make_key, wait_for
from tests.support.fakes import anthropic_upstream, cohere_upstream, gemini_upstream, ollama_upstream, zhipu_upstream
from tests.support.fakes.recording import served
from tests.support.fuzzing import Tally, fuzz_settings, report

pytestmark = pytest.mark.django_db(transaction=True)
fake_anthropic_server, fake_anthropic = served(anthropic_upstream.FakeAnthropic, "fake_anthropic")
fake_gemini_server, fake_gemini = served(gemini_upstream.FakeGemini, "fake_gemini")
fake_cohere_server, fake_cohere = served(cohere_upstream.FakeCohere, "fake_cohere")
fake_ollama_server, fake_ollama = served(ollama_upstream.FakeOllama, "fake_ollama")
fake_zhipu_server, fake_zhipu = served(zhipu_upstream.FakeZhipu, "fake_zhipu")

KEY_QUOTA = 5_000_000
VALID = {
    "/v1/chat/completions": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/completions": {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"},
    "/v1/embeddings": {"model": "text-embedding-3-small", "input": "hello"},
    "/v1/moderations": {"input": "hello"},
    "/v1/rerank": {"model": "jina-reranker-v2-base-multilingual", "query": "q", "documents": ["a", "b"]},
    "/v1/images/generations": {"model": "dall-e-3", "prompt": "a cat", "size": "1024x1024"},
    "/v1/audio/speech": {"model": "tts-1", "input": "hello", "voice": "alloy"},
}
JSON_PATHS = list(VALID)
TRANSCRIPTIONS = "/v1/audio/transcriptions"
GET_PATHS = ["/v1/models", "/v1/models/gpt-4o", "/v1/dashboard/billing/subscription", "/dashboard/billing/usage"]
# The fields each endpoint reads, which the mutations below favour over made-up names.
FIELDS = {
    "/v1/chat/completions": ["model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens"],
    "/v1/completions": ["model", "prompt", "stream", "stream_options", "max_tokens"],
    "/v1/embeddings": ["model", "input", "encoding_format", "dimensions"],
    "/v1/moderations": ["model", "input"],
    "/v1/rerank": ["model", "query", "documents", "top_n", "return_documents"],
    "/v1/images/generations": ["model", "prompt", "n", "size", "quality", "response_format"],
    "/v1/audio/speech": ["model", "input", "voice", "response_format", "speed"],
}

# --- What a client may send ------------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
)
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=40))


def nested(depth: int) -> object:
    """`depth` levels of lists and objects: orjson reads 1024 of them but writes only 254."""
    value: object = 0
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
) | st.integers(250, 1020).map(nested)


def png(width: int, height: int) -> bytes:
    """A PNG's header, an empty IDAT and IEND: enough for Pillow to read its size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    size = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", size) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def data_url(content: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(content).decode()


IMAGE_URLS = st.one_of(
    st.builds(lambda w, h: data_url(png(w, h)), st.integers(0, 20_000), st.integers(0, 20_000)),
    st.binary(max_size=64).map(data_url),
    st.sampled_from(["data:image/png,notbase64", "data:image/png;base64,!!!", "ftp://example/x.png", ""]),
    JSON_VALUES,
)
CONTENT_PARTS = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=40) | JSON_VALUES}),
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=40)}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": IMAGE_URLS}) | IMAGE_URLS},
        optional={"detail": st.sampled_from(["low", "high", "auto"]) | JSON_VALUES},
    ),
    JSON_VALUES,
)


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """`good` three times in four: a request that fails on its first field never reaches the rest."""
    return st.integers(0, 3).flatmap(lambda pick: bad if pick == 0 else good)


TOOL_CALLS = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.text(max_size=8),
            "type": st.just("function"),
            "function": st.fixed_dictionaries({"name": st.text(max_size=8), "arguments": st.text(max_size=20)}),
        }
    ),
    max_size=2,
)
MESSAGES = st.lists(
    mostly(
        st.fixed_dictionaries(
            {"role": mostly(st.sampled_from(["system", "user", "assistant", "tool", "developer"]), JSON_VALUES)},
            optional={
                "content": mostly(st.text(max_size=80) | st.lists(CONTENT_PARTS, max_size=3), JSON_VALUES),
                "name": mostly(st.text(max_size=10), JSON_VALUES),
                "tool_calls": mostly(TOOL_CALLS, JSON_VALUES),
                "tool_call_id": mostly(st.text(max_size=8), JSON_VALUES),
            },
        ),
        JSON_VALUES,
    ),
    min_size=1,
    max_size=4,
)
VALUES = {  # values that reach deeper than random JSON, per field
    "model": st.sampled_from(["gpt-4o", "gpt-4o-mini", "dall-e-2", "", " ", "x" * 300, "a\x00b"]) | JSON_VALUES,
    "messages": MESSAGES,
    "stream": st.booleans() | JSON_VALUES,
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans() | JSON_VALUES}) | JSON_VALUES,
    "max_tokens": NUMBERS | JSON_VALUES,
    "max_completion_tokens": NUMBERS | JSON_VALUES,
    "prompt": st.lists(st.integers(-(2**40), 2**40), max_size=5) | st.lists(st.text(max_size=20), max_size=3),
    "input": st.lists(st.lists(st.integers(0, 2**20), max_size=5), max_size=3) | st.text(max_size=60),
    "documents": st.lists(st.text(max_size=20) | st.fixed_dictionaries({"text": JSON_VALUES}), max_size=3),
    "n": NUMBERS,
    "top_n": NUMBERS,
    "size": st.sampled_from(["256x256", "512x512", "1024x1024", "1792x1024", "1x1", "-1x-1"]),
    "quality": st.sampled_from(["standard", "hd", "low", "high", "ultra"]) | JSON_VALUES,
}


@st.composite
def bodies(draw, path: str) -> object:
    """The endpoint's valid body with up to four fields replaced, removed or added -- or any JSON at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON_VALUES)
    body = dict(VALID[path])
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(FIELDS[path]) | st.text(max_size=12))
        if name in body and draw(st.integers(0, 3)) == 0:
            del body[name]
        else:
            body[name] = draw(VALUES.get(name, JSON_VALUES) | JSON_VALUES)
    return body


def encode(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()  # the standard library writes any integer


def not_a_json_object(raw: bytes) -> bool:
    """What the relay's parser (orjson: no BOM, no NaN, UTF-8 only) does not read as an object."""
    try:
        return not isinstance(orjson.loads(raw), dict)
    except orjson.JSONDecodeError:
        return True


BROKEN_JSON = st.one_of(
    st.binary(max_size=200),
    st.just(b""),
    st.sampled_from(
        [
            b"{",
            b'{"model": "gpt-4o", "messages": [',
            b'{"model": NaN}',
            b'{"model": Infinity}',
            b'{"max_tokens": 1' + b"0" * 400 + b"}",
            b"[" * 5000 + b"]" * 5000,
            b"\xef\xbb\xbf" + encode(VALID["/v1/chat/completions"]),
            encode(VALID["/v1/chat/completions"]).replace(b'"hi"', b'"h\xffi"'),
            encode(VALID["/v1/chat/completions"]).replace(b'"hi"', b'"\xed\xa0\x80"'),
        ]
    ),
    st.builds(lambda body, cut: encode(body)[:cut], st.sampled_from(list(VALID.values())), st.integers(1, 40)),
    st.builds(
        lambda body, junk: encode(body).replace(b'"', junk, 1), st.sampled_from(list(VALID.values())), st.binary()
    ),
).filter(not_a_json_object)
CONTENT_TYPES = st.sampled_from(
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=xyz",
        "application/json; charset=latin-1",
        "application/json; charset=nonsense",
        "application/octet-stream",
        "",
    ]
)
HEADER_TEXT = st.text(st.characters(max_codepoint=255, exclude_characters="\r\n\x00"), max_size=60)
AUTH_KINDS = [
    "alice",
    "alice, lowercase bearer",
    "alice, no Bearer",
    "bob",
    "root",
    "none",
    "Bearer alone",
    "sk- alone",
    "made up",
    "Basic",
    "disabled key",
    "expired key",
    "key for other IPs",
    "key for gpt-4o only",
    "deleted key",
    "alice pins a channel",
    "root pins the channel",
    "root pins a missing channel",
    "random text",
]


# --- The world and the harness ---------------------------------------------------------------------------


@dataclass
class World:
    keys: dict[str, str]
    channel_id: int
    gateway: Gateway = field(default_factory=Gateway)

    def authorization(self, kind: str, random_text: str = "") -> dict[str, str]:
        pins = {
            "alice pins a channel": f"{self.keys['alice']}-{self.channel_id}",
            "root pins the channel": f"{self.keys['root']}-{self.channel_id}",
            "root pins a missing channel": f"{self.keys['root']}-999999",
        }
        value = {
            "alice, lowercase bearer": f"bearer {self.keys['alice']}",
            "alice, no Bearer": self.keys["alice"],
            "none": None,
            "Bearer alone": "Bearer",
            "sk- alone": "Bearer sk-",
            "made up": "Bearer sk-" + "x" * 48,
            "Basic": "Basic " + base64.b64encode(b"alice:alice-pass").decode(),
            "random text": random_text,
        }.get(kind, f"Bearer {pins.get(kind) or self.keys.get(kind)}")
        return {"Authorization": value} if value is not None else {}


@pytest.fixture
def world(fake_openai, transactional_db) -> World:
    alice = User.objects.create_user("alice", quota=ALICE_QUOTA)
    bob = User.objects.create_user("bob", quota=ALICE_QUOTA)
    root = User.objects.create_user("root", quota=ALICE_QUOTA, is_staff=True, is_superuser=True)
    keys = {
        "alice": make_key(alice)[1],
        "bob": make_key(bob)[1],
        "root": make_key(root)[1],
        "disabled key": make_key(alice, status=ApiKey.Status.DISABLED)[1],
        "expired key": make_key(alice, expires_at=timezone.now() - timedelta(days=1))[1],
        "key for other IPs": make_key(alice, allow_ips=["10.0.0.0/8"])[1],
        "key for gpt-4o only": make_key(alice, model_limits=["gpt-4o"])[1],
    }
    deleted, keys["deleted key"] = make_key(alice)
    deleted.delete()
    channel = make_channel(fake_openai.url, models=["*"])
    return World(keys, channel.pk)


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest):
    cases = Tally("relay fuzz (hypothesis)")
    yield cases
    report(request, cases)


@pytest.fixture
def loop():
    """One event loop for all the examples of a test, as a server has: the upstream client lives on it."""
    with asyncio.Runner() as runner:
        yield runner


def no_reservation_held() -> bool:
    return not Reservation.objects.filter(state=Reservation.State.HELD).exists()


async def settled_request(world: World, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
    answer = await world.gateway.request(method, path, body, headers)
    # A stream settles in a task of its own once its last chunk is out; everything else before answering.
    await wait_for(no_reservation_held)
    return answer


def send(loop, world: World, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
    return loop.run(settled_request(world, method, path, body, headers))


def check(answer: Answer, tally: Tally, category: str, billed: bool = True) -> None:
    """The properties every answer has, and the quota every case leaves behind. `billed`: a 2xx from this
    endpoint writes one consume log (every answer carries X-Request-Id, a model list too)."""
    tally.add(category, answer.status)
    assert answer.status < 500, (answer.status, answer.body[:500])
    if answer.status >= 400:
        assert answer.headers.get("content-type") == "application/json", answer.headers
        error = json.loads(answer.body)["error"]
        assert isinstance(error["message"], str) and error["message"], answer.body
        assert isinstance(error["type"], str) and error["type"], answer.body
    request_id = answer.headers.get("x-request-id")
    consumed = Log.objects.filter(type=Log.Type.CONSUME, request_id=request_id or "-").count()
    assert consumed == (1 if answer.status < 300 and billed else 0), (answer.status, answer.body[:300])
    for token in ApiKey.objects.all():
        assert token.remain_quota + token.used_quota == KEY_QUOTA, token
        assert token.used_quota == charged(token_id=token.pk), token
    for user in User.objects.all():
        assert user.quota + user.used_quota == ALICE_QUOTA, user
        assert user.used_quota == charged(user_id=user.pk), user


def charged(**who: int) -> int:
    return Log.objects.filter(type=Log.Type.CONSUME, **who).aggregate(total=Sum("quota"))["total"] or 0


def json_headers(world: World, content_type: str | None = "application/json") -> dict[str, str]:
    headers = world.authorization("alice")
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


# --- The properties --------------------------------------------------------------------------------------


@fuzz_settings(600)
@given(path=st.sampled_from(JSON_PATHS), data=st.data())
def test_any_json_body_is_answered_2xx_or_4xx_and_billed_exactly(world, loop, tally, path, data):
    body = data.draw(bodies(path))
    answer = send(loop, world, "POST", path, encode(body), json_headers(world))
    check(answer, tally, "arbitrary JSON bodies")


@fuzz_settings(200)
@given(
    messages=MESSAGES,
    extra=st.fixed_dictionaries(
        {}, optional={name: VALUES[name] for name in ("model", "stream", "stream_options", "max_tokens")}
    ),
)
def test_any_chat_messages_are_answered_2xx_or_4xx_and_billed_exactly(world, loop, tally, messages, extra):
    body = {"model": "gpt-4o", "messages": messages, **extra}
    answer = send(loop, world, "POST", "/v1/chat/completions", encode(body), json_headers(world))
    check(answer, tally, "chat messages (text, images, tools)")


TOOLS = st.lists(
    mostly(
        st.fixed_dictionaries(
            {
                "type": mostly(st.just("function"), JSON_VALUES),
                "function": mostly(
                    st.fixed_dictionaries(
                        {"name": mostly(st.text(max_size=12), JSON_VALUES)},
                        optional={"parameters": JSON_VALUES, "description": JSON_VALUES},
                    ),
                    JSON_VALUES,
                ),
            }
        ),
        JSON_VALUES,
    ),
    max_size=2,
)
CONVERTED_FIELDS = {
    name: JSON_VALUES
    for name in ("temperature", "top_p", "stop", "tool_choice", "response_format", "n", "seed", "user")
}


@pytest.fixture
def converting_channels(world, fake_anthropic, fake_gemini, fake_cohere, fake_ollama, fake_zhipu) -> None:
    """Models of providers whose adaptors convert the body go to their fakes (tried before the `*` channel)."""
    for fake, prefix, kind, key in [
        (fake_anthropic, "claude-*", "anthropic", anthropic_upstream.API_KEY),
        (fake_gemini, "gemini-*", "gemini", gemini_upstream.API_KEY),
        (fake_cohere, "command-*", "cohere", cohere_upstream.API_KEY),
        (fake_ollama, "llama*", "ollama", "unused"),
        (fake_zhipu, "glm-*", "zhipu", zhipu_upstream.API_KEY),
    ]:
        make_channel(fake.url, models=[prefix], key=key, type=kind, name=kind, priority=1)


@fuzz_settings(250)
@given(
    model=st.sampled_from(["claude-3-5-sonnet-20241022", "gemini-2.0-flash", "command-r-plus", "llama3.2", "glm-4"]),
    messages=MESSAGES,
    extra=st.fixed_dictionaries(
        {},
        optional={
            "tools": TOOLS,
            **CONVERTED_FIELDS,
            **{name: VALUES[name] for name in ("stream", "stream_options", "max_tokens")},
        },
    ),
)
def test_chat_converted_for_other_providers_is_answered_2xx_or_4xx(
    world, converting_channels, loop, tally, model, messages, extra
):
    body = {"model": model, "messages": messages, **extra}
    answer = send(loop, world, "POST", "/v1/chat/completions", encode(body), json_headers(world))
    check(answer, tally, "chat converted for Anthropic, Gemini, Cohere, Ollama, Zhipu")


@fuzz_settings(100)
@given(path=st.sampled_from([*JSON_PATHS, TRANSCRIPTIONS]), raw=BROKEN_JSON)
def test_a_body_that_is_not_json_is_a_400(world, loop, tally, path, raw):
    answer = send(loop, world, "POST", path, raw, json_headers(world))
    check(answer, tally, "malformed JSON, invalid UTF-8")
    assert answer.status == 400


# Only digits: daphne answers 400 itself to any other Content-Length, before the gateway sees the request.
CONTENT_LENGTHS = st.sampled_from([None, "0", "1", "17", "99999999999999999999"])


@fuzz_settings(60)
@given(path=st.sampled_from(JSON_PATHS), content_type=CONTENT_TYPES, content_length=CONTENT_LENGTHS)
def test_the_content_type_of_a_json_body_does_not_matter(world, loop, tally, path, content_type, content_length):
    headers = json_headers(world, content_type)
    if content_length is not None:
        headers["Content-Length"] = content_length
    answer = send(loop, world, "POST", path, encode(VALID[path]), headers)
    check(answer, tally, "wrong content types and lengths")
    assert answer.status == (413 if content_length == "99999999999999999999" else 200)


@fuzz_settings(120)
@given(kind=st.sampled_from(AUTH_KINDS), random_text=HEADER_TEXT, path=st.sampled_from(JSON_PATHS))
def test_only_a_usable_key_is_served(world, loop, tally, kind, random_text, path):
    headers = {**world.authorization(kind, random_text), "Content-Type": "application/json"}
    answer = send(loop, world, "POST", path, encode(VALID[path]), headers)
    check(answer, tally, "missing or invalid auth")
    if kind in ("alice", "alice, lowercase bearer", "alice, no Bearer", "bob", "root", "root pins the channel"):
        assert answer.status == 200
    elif kind == "key for gpt-4o only":
        assert answer.status == (200 if json.loads(encode(VALID[path])).get("model") == "gpt-4o" else 403)
    elif kind == "root pins a missing channel":
        assert answer.status == 400
    else:
        assert answer.status in (401, 403)


FORM_VALUES = st.text(max_size=30) | st.binary(max_size=30).map(lambda raw: raw.decode("latin-1"))


@st.composite
def multipart(draw) -> tuple[bytes, str]:
    """A multipart form with some of `file`, `model` and other fields, the boundary right or not."""
    boundary = draw(st.sampled_from(["fuzzboundary", "x" * 71, "a b"]))
    fields = draw(st.dictionaries(st.sampled_from(["model", "language", "prompt", "file", "x"]), FORM_VALUES))
    parts = []
    for name, value in fields.items():
        filename = f'; filename="{draw(FORM_VALUES)}"' if name == "file" and draw(st.booleans()) else ""
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n\r\n{value}\r\n')
    body = ("".join(parts) + f"--{boundary}--\r\n").encode("utf-8", "surrogateescape")
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    content_type = draw(
        st.sampled_from([f"multipart/form-data; boundary={boundary}", "multipart/form-data", "multipart/form-data;"])
    )
    return body, content_type


@fuzz_settings(80)
@given(form=multipart())
def test_any_transcription_form_is_answered_2xx_or_4xx(world, loop, tally, form):
    body, content_type = form
    answer = send(loop, world, "POST", TRANSCRIPTIONS, body, json_headers(world, content_type))
    check(answer, tally, "multipart transcriptions")


@fuzz_settings(60)
@given(
    method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "POST"]),
    path=st.sampled_from([*JSON_PATHS, TRANSCRIPTIONS, *GET_PATHS])
    | st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="?#%"), max_size=30).map(
        lambda tail: "/v1/" + tail
    ),
)
def test_every_path_and_method_answers_in_the_openai_shape(world, loop, tally, method, path):
    answer = send(loop, world, method, path, b"", world.authorization("alice"))
    check(answer, tally, "methods and unknown paths", billed=method == "POST" and path in (*JSON_PATHS, TRANSCRIPTIONS))


@pytest.mark.parametrize("path", [*JSON_PATHS, TRANSCRIPTIONS])
@pytest.mark.parametrize("extra", [1, 1024])
def test_a_body_over_the_limit_is_a_413(world, loop, tally, path, extra):
    limit = 64 * 1024
    padded = {**VALID.get(path, {}), "padding": "x" * (limit + extra)}
    with override_settings(RELAY_MAX_BODY_BYTES=limit, DATA_UPLOAD_MAX_MEMORY_SIZE=limit):
        answer = send(loop, world, "POST", path, encode(padded), json_headers(world))
    check(answer, tally, "huge bodies")
    assert answer.status == 413


# What the fuzzing found, pinned down as plain tests.


def post_chat(loop, world: World, body: dict, authorization: str | None = None) -> Answer:
    headers = json_headers(world) if authorization is None else {"Authorization": authorization}
    return send(loop, world, "POST", "/v1/chat/completions", encode(body), headers)


def error_of(answer: Answer) -> dict:
    return json.loads(answer.body)["error"]


def test_a_method_an_endpoint_lacks_is_a_405_in_the_openai_shape(world, loop):
    answer = send(loop, world, "GET", "/v1/chat/completions", b"", world.authorization("alice"))
    assert (answer.status, answer.headers["allow"], error_of(answer)["code"]) == (405, "POST", "method_not_allowed")
    answer = send(loop, world, "POST", "/v1/models", b"", world.authorization("alice"))
    assert (answer.status, answer.headers["allow"]) == (405, "GET")


def test_a_body_nested_deeper_than_orjson_writes_is_a_400(world, loop):
    # The rerank adaptor writes the body it sends upstream; orjson refuses more than 254 levels.
    body = {**VALID["/v1/rerank"], "extra": nested(260)}
    answer = send(loop, world, "POST", "/v1/rerank", encode(body), json_headers(world))
    assert (answer.status, error_of(answer)["code"]) == (400, "invalid_body")
    assert not Log.objects.exists()


@pytest.mark.parametrize("quality", [{}, ["hd"], 1])
def test_an_image_quality_that_is_not_a_string_is_a_400(world, loop, quality):
    body = {**VALID["/v1/images/generations"], "quality": quality}
    answer = send(loop, world, "POST", "/v1/images/generations", encode(body), json_headers(world))
    assert (answer.status, error_of(answer)["param"]) == (400, "quality")


@pytest.mark.backend
@pytest.mark.parametrize("model", ["x" * 129, "gpt-4o\x00"])
def test_a_model_name_the_log_cannot_hold_is_a_400(world, loop, model):
    # SQLite would store it; PostgreSQL refused it when the consume log was written, after the upstream had
    # answered: the client got a 503 "database unavailable" and the call went unbilled.
    answer = post_chat(loop, world, {**VALID["/v1/chat/completions"], "model": model})
    assert (answer.status, error_of(answer)["param"]) == (400, "model")


def test_a_channel_pin_of_superscript_digits_is_a_401(world, loop):
    authorization = f"Bearer {world.keys['alice']}-\u00b2"
    assert post_chat(loop, world, VALID["/v1/chat/completions"], authorization).status == 401
    assert send(loop, world, "GET", "/v1/models", b"", {"Authorization": authorization}).status == 401


def test_an_image_too_large_to_decode_is_a_400(world, loop):
    image = {"type": "image_url", "image_url": {"url": data_url(png(20_000, 20_000))}}
    answer = post_chat(loop, world, {"model": "gpt-4o", "messages": [{"role": "user", "content": [image]}]})
    assert answer.status == 400


CONVERTING_MODELS = ["claude-3-5-sonnet-20241022", "gemini-2.0-flash", "command-r-plus", "llama3.2", "glm-4"]


@pytest.mark.parametrize("model", ["claude-3-5-sonnet-20241022", "gemini-2.0-flash", "llama3.2"])
def test_tool_calls_that_are_not_objects_are_left_out_of_the_conversion(world, converting_channels, loop, model):
    calls = [1, {"id": ["c0"], "function": "f"}, {"id": "c1", "function": {"name": "f", "arguments": "{}"}}]
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "calling", "tool_calls": calls},
        {"role": "tool", "tool_call_id": ["c1"], "content": "ok"},
    ]
    assert post_chat(loop, world, {"model": model, "messages": messages}).status == 200


@pytest.mark.parametrize("model", CONVERTING_MODELS)
def test_a_text_part_whose_text_is_not_a_string_is_a_400(world, converting_channels, loop, model):
    content = [{"type": "text", "text": {"not": "a string"}}]
    answer = post_chat(loop, world, {"model": model, "messages": [{"role": "user", "content": content}]})
    assert (answer.status, error_of(answer)["code"]) == (400, "invalid_content")


def test_a_body_the_conversion_nests_deeper_than_orjson_writes_is_a_400(world, converting_channels, loop):
    # Gemini takes a tool result's JSON text as an object: 251 levels inside a string become 251 levels of body.
    messages = [{"role": "user", "content": "hi"}, {"role": "tool", "content": json.dumps(nested(251))}]
    answer = post_chat(loop, world, {"model": "gemini-2.0-flash", "messages": messages})
    assert (answer.status, error_of(answer)["code"]) == (400, "invalid_body")
