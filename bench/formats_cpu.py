"""Gateway CPU per request by inbound format, in one run: OpenAI chat to an OpenAI channel against Anthropic
Messages passed through to an Anthropic channel, OpenAI Responses passed through to the OpenAI channel (stored
upstream, its owner remembered, and with `store: false`) and Gemini's generateContent passed through to a Gemini
channel, whole and streamed (issues 22 and 23: a pass-through must cost no more than chat), plus Messages,
Responses and Gemini converted for reference.

It provisions a scratch database, starts one fake upstream (fixed answers of the same size in both wire formats)
and the gateway (`scripts/serve.sh`), then sends the kinds in alternating rounds at a fixed concurrency and reads
the server process's CPU time from /proc/<pid>/stat around each round.
    .venv/bin/python bench/formats_cpu.py [--requests 2000] [--concurrency 8] [--rounds 4] [--server uvicorn]
"""

import argparse
import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(tempfile.mkdtemp(prefix="gateway-formats-cpu."))
os.environ.update(DATA_DIR=str(WORK / "data"), SESSION_SECRET="bench-session-secret", SQL_DSN="", REDIS_CONN_STRING="")
(WORK / "data").mkdir()
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")

PROMPT = "Summarise the following paragraph in one sentence. " * 20
PIECES = [f"piece {number:03d} " for number in range(40)]  # the answer's text, streamed piece by piece
TEXT = "".join(PIECES)
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def chat_answer(model: str) -> bytes:
    message = {"role": "assistant", "content": TEXT}
    usage = {"prompt_tokens": 220, "completion_tokens": 120, "total_tokens": 340}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    answer = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model, "choices": [choice]}
    return json.dumps({**answer, "usage": usage}).encode()


def chat_stream(model: str) -> bytes:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}
    deltas = [{"index": 0, "delta": {"content": piece}, "finish_reason": None} for piece in PIECES]
    chunks = [{**base, "choices": [choice]} for choice in deltas]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 220, "completion_tokens": 120}})
    return b"".join(f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks) + b"data: [DONE]\n\n"


def anthropic_answer(model: str) -> bytes:
    usage = {"input_tokens": 220, "output_tokens": 120, "cache_read_input_tokens": 0}
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "stop_reason": "end_turn"}
    return json.dumps({**message, "content": [{"type": "text", "text": TEXT}], "usage": usage}).encode()


def anthropic_stream(model: str) -> bytes:
    start = {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": []}
    events = [{"type": "message_start", "message": {**start, "usage": {"input_tokens": 220, "output_tokens": 1}}}]
    events.append({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    for piece in PIECES:
        events.append({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
    events.append({"type": "content_block_stop", "index": 0})
    delta = {"stop_reason": "end_turn", "stop_sequence": None}
    events.append({"type": "message_delta", "delta": delta, "usage": {"output_tokens": 120}})
    events.append({"type": "message_stop"})
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def responses_answer(model: str, number: int) -> dict:
    message = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant"}
    usage = {"input_tokens": 220, "output_tokens": 120, "total_tokens": 340}
    output = [{**message, "content": [{"type": "output_text", "text": TEXT, "annotations": []}]}]
    return {"id": f"resp_{number}", "object": "response", "status": "completed", "model": model, "output": output,
            "usage": usage}  # fmt: skip


def responses_stream(model: str, number: int) -> bytes:
    answer = responses_answer(model, number)
    started = {**answer, "status": "in_progress", "output": [], "usage": None}
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    events = [{"type": "response.created", "response": started}, {"type": "response.in_progress", "response": started}]
    events.append(
        {"type": "response.output_item.added", "output_index": 0, "item": {**answer["output"][0], "content": []}}
    )
    events.append({"type": "response.content_part.added", **where, "part": {"type": "output_text", "text": ""}})
    events += [{"type": "response.output_text.delta", **where, "delta": piece} for piece in PIECES]
    events.append({"type": "response.output_text.done", **where, "text": TEXT})
    events.append({"type": "response.output_item.done", "output_index": 0, "item": answer["output"][0]})
    events.append({"type": "response.completed", "response": answer})
    return b"".join(
        f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': n})}\n\n".encode()
        for n, e in enumerate(events)
    )


RESPONSE_NUMBERS = itertools.count()  # every response its own id, as OpenAI's are


def gemini_answer(model: str) -> bytes:
    usage = {"promptTokenCount": 220, "candidatesTokenCount": 120, "totalTokenCount": 340}
    candidate = {"content": {"role": "model", "parts": [{"text": TEXT}]}, "finishReason": "STOP", "index": 0}
    return json.dumps({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}).encode()


def gemini_stream(model: str) -> bytes:
    events = []
    for number, piece in enumerate(PIECES):
        candidate: dict = {"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}
        usage = {"promptTokenCount": 220, "candidatesTokenCount": 3 * (number + 1)}
        if number == len(PIECES) - 1:
            candidate["finishReason"] = "STOP"
        events.append({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model})
    return b"".join(f"data: {json.dumps(event)}\r\n\r\n".encode() for event in events)


ANSWERS = {
    ("chat", False): chat_answer("bench-gpt"),
    ("chat", True): chat_stream("bench-gpt"),
    ("messages", False): anthropic_answer("bench-claude"),
    ("messages", True): anthropic_stream("bench-claude"),
    ("gemini", False): gemini_answer("bench-gemini"),
    ("gemini", True): gemini_stream("bench-gemini"),
}


async def upstream(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if ":" in request.path:
        kind, stream = "gemini", request.path.endswith(":streamGenerateContent")
    else:
        kind, stream = "messages" if request.path.endswith("/messages") else "chat", bool(body.get("stream"))
    content_type = "text/event-stream" if stream else "application/json"
    if request.path.endswith("/responses"):
        number = next(RESPONSE_NUMBERS)
        answer = (
            responses_stream(body["model"], number) if stream else json.dumps(responses_answer(body["model"], number))
        )
        return web.Response(body=answer, content_type=content_type)
    return web.Response(body=ANSWERS[kind, stream], content_type=content_type)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_upstream(port: int) -> None:
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/{tail:.*}", upstream)
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    threading.Thread(target=loop.run_forever, daemon=True).start()


def provision(upstream_url: str) -> str:
    import django

    django.setup()
    from django.core.management import call_command

    from billing.models import ApiKey, User
    from channels_app.models import Channel

    call_command("migrate", verbosity=0)
    user = User.objects.create_user("bench", quota=10**15)
    key = ApiKey(user=user, name="bench", unlimited_quota=True)
    plain = key.set_key()
    key.save()
    for name, kind, base_url in (
        ("bench-gpt", "openai", f"{upstream_url}/v1"),
        ("bench-claude", "anthropic", upstream_url),
        ("bench-gemini", "gemini", upstream_url),
    ):
        channel = Channel(name=name, type=kind, base_url=base_url, models=[name])
        channel.key = "sk-bench-upstream"
        channel.save()
    return plain


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS  # utime, stime


def body(path: str, model: str, stream: bool) -> bytes:
    if path.startswith("/v1beta/"):  # Gemini's: the model and the stream are in the path
        contents = [{"role": "user", "parts": [{"text": PROMPT}]}]
        return json.dumps({"contents": contents, "generationConfig": {"maxOutputTokens": 256}}).encode()
    if path.startswith("/v1/responses"):
        request = {"model": model, "max_output_tokens": 256, "input": [{"role": "user", "content": PROMPT}]}
        if path.endswith("#store=false"):
            request["store"] = False
    else:
        request = {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": PROMPT}]}
    return json.dumps({**request, "stream": stream}).encode()


def gemini_path(model: str, stream: bool) -> str:
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"/v1beta/models/{model}:{method}"


KINDS = {  # name -> (path, model, stream); `#store=false` is said in the body, not sent
    "chat -> openai, whole": ("/v1/chat/completions", "bench-gpt", False),
    "messages -> anthropic (pass-through), whole": ("/v1/messages", "bench-claude", False),
    "responses -> openai (pass-through, stored), whole": ("/v1/responses", "bench-gpt", False),
    "responses -> openai (pass-through, store=false), whole": ("/v1/responses#store=false", "bench-gpt", False),
    "chat -> openai, stream": ("/v1/chat/completions", "bench-gpt", True),
    "messages -> anthropic (pass-through), stream": ("/v1/messages", "bench-claude", True),
    "responses -> openai (pass-through, stored), stream": ("/v1/responses", "bench-gpt", True),
    "responses -> openai (pass-through, store=false), stream": ("/v1/responses#store=false", "bench-gpt", True),
    "messages -> openai (converted), whole": ("/v1/messages", "bench-gpt", False),
    "messages -> openai (converted), stream": ("/v1/messages", "bench-gpt", True),
    "responses -> anthropic (converted), whole": ("/v1/responses", "bench-claude", False),
    "responses -> anthropic (converted), stream": ("/v1/responses", "bench-claude", True),
    "gemini -> gemini (pass-through), whole": (gemini_path("bench-gemini", False), "bench-gemini", False),
    "gemini -> gemini (pass-through), stream": (gemini_path("bench-gemini", True), "bench-gemini", True),
    "gemini -> openai (converted), whole": (gemini_path("bench-gpt", False), "bench-gpt", False),
    "gemini -> openai (converted), stream": (gemini_path("bench-gpt", True), "bench-gpt", True),
}


async def send(client: httpx.AsyncClient, url: str, content: bytes, count: int, concurrency: int) -> None:
    remaining = iter(range(count))

    async def worker() -> None:
        for _ in remaining:
            response = await client.post(url, content=content)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def run(base: str, key: str, pid: int, args: argparse.Namespace) -> dict[str, list[float]]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "anthropic-version": "2023-06-01"}
    per_round = args.requests // args.rounds
    spent: dict[str, list[float]] = {name: [] for name in KINDS}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        for path, model, stream in KINDS.values():  # warm-up: connections, caches, tokenizer
            await send(client, path.partition("#")[0], body(path, model, stream), 100, args.concurrency)
        for number in range(args.rounds):
            order = list(KINDS) if number % 2 == 0 else list(reversed(KINDS))
            for name in order:
                path, model, stream = KINDS[name]
                before = cpu_ms(pid)
                await send(client, path.partition("#")[0], body(path, model, stream), per_round, args.concurrency)
                spent[name].append((cpu_ms(pid) - before) / per_round)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="per kind, over all rounds")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--server", default="uvicorn")
    args = parser.parse_args()
    upstream_port, port = free_port(), free_port()
    serve_upstream(upstream_port)
    key = provision(f"http://127.0.0.1:{upstream_port}")
    server = subprocess.Popen(
        [ROOT / "scripts" / "serve.sh", args.server, "127.0.0.1", str(port)], cwd=ROOT, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        spent = asyncio.run(run(f"http://127.0.0.1:{port}", key, server.pid, args))
    finally:
        server.terminate()
        server.wait()
    print(f"gateway CPU ms per request ({args.server}, {args.requests} per kind, c={args.concurrency}, mean; rounds)")
    for name, rounds in spent.items():
        print(f"  {name:56s} {sum(rounds) / len(rounds):6.3f}   ({' '.join(f'{ms:.3f}' for ms in rounds)})")


if __name__ == "__main__":
    main()
