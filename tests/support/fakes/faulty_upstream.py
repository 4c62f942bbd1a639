"""A fake OpenAI upstream that misbehaves at the byte level: raw asyncio sockets on 127.0.0.1 (random port).

Each connection serves one request (every answer says `Connection: close`); `mode` decides how it goes.
The fake counts connections, and which of them the peer (the gateway) closed before the fake was done,
so a test can tell that the gateway hung up instead of waiting forever.
"""

import asyncio
import json
import threading
from dataclasses import dataclass, field

from tests.support.fakes.openai_upstream import Behaviour, completion, stream_chunks

OK = "ok"  # a normal answer (stream or not), `interval` seconds between stream events
HANG_BEFORE_HEADERS = "hang_before_headers"  # read the request, never answer
HANG_MID_STREAM = "hang_mid_stream"  # headers and `chunks` events (half the body), then silence
CLOSE_MID_STREAM = "close_mid_stream"  # headers and `chunks` events (half the body), then close the socket
INVALID_JSON = "invalid_json"  # 200 with a body, or stream events, that are not JSON
ERROR_BODY = "error_body"  # 200 whose body (or first stream event) is OpenAI's error object
ERROR_BODY_PRETTY = "error_body_pretty"  # the same error object, indented over several lines
GIGANTIC = "gigantic"  # a `size`-byte JSON answer, or an endless stream of events at full speed
SLOWLORIS = "slowloris"  # headers at once, then the answer one byte every `interval` seconds, forever
SLOWLORIS_HEADERS = "slowloris_headers"  # the status line and headers themselves, one byte at a time, forever

ERROR = {"error": {"message": "The server had an error while processing your request.", "type": "server_error"}}
CONTENT_PIECE = "lorem ipsum dolor sit amet " * 40  # ~1 KB of text per gigantic stream event


@dataclass
class FaultyUpstream:
    mode: str = OK
    chunks: int = 3  # events sent before a mid-stream fault
    interval: float = 0.05  # seconds between trickled bytes (slowloris) or events (ok)
    size: int = 50 * 1024 * 1024  # bytes of a gigantic non-stream answer
    port: int = 0
    opened: int = 0
    closed: int = 0
    hung_up: int = 0  # connections the peer closed before the fake had finished answering (since `reset`)
    requests: list[dict] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return self.opened - self.closed

    def reset(self, mode: str = OK, **params) -> None:
        self.mode, self.chunks, self.interval, self.size = mode, 3, 0.05, 50 * 1024 * 1024
        self.hung_up = 0
        for name, value in params.items():
            setattr(self, name, value)
        self.requests.clear()

    def start(self) -> "FaultyUpstream":
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        server = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._serve, "127.0.0.1", 0), loop).result(10)
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        try:
            body = await read_request(reader)
            if body is None:
                return
            self.requests.append(body)
            answer = asyncio.create_task(self._answer(body, writer))
            peer_gone = asyncio.create_task(reader.read())  # the gateway sends nothing more: this ends at EOF
            await asyncio.wait({answer, peer_gone}, return_when=asyncio.FIRST_COMPLETED)
            if not answer.done() or isinstance(answer.exception(), ConnectionError):
                self.hung_up += 1
            answer.cancel()
            peer_gone.cancel()
        except ConnectionError:
            self.hung_up += 1
        finally:
            writer.close()
            self.closed += 1

    async def _answer(self, body: dict, writer: asyncio.StreamWriter) -> None:
        """Return when the answer is complete (the fake then closes); hang by never returning."""
        stream = bool(body.get("stream"))
        if self.mode == HANG_BEFORE_HEADERS:
            await asyncio.Event().wait()
        if self.mode == SLOWLORIS_HEADERS:
            await trickle(writer, b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"z" * 10_000_000, self.interval)
        if stream:
            await self._stream(body, writer)
        else:
            await self._whole(body, writer)

    async def _whole(self, body: dict, writer: asyncio.StreamWriter) -> None:
        if self.mode == GIGANTIC:
            await send_gigantic(writer, self.size)
            return
        content = {
            INVALID_JSON: b'{"id": "chatcmpl-broken", "choices": [{"message": ',
            ERROR_BODY: json.dumps(ERROR).encode(),
            ERROR_BODY_PRETTY: json.dumps(ERROR, indent=2).encode(),
        }.get(self.mode) or json.dumps(completion(body, Behaviour())).encode()
        writer.write(head("application/json", f"Content-Length: {len(content)}"))
        if self.mode == SLOWLORIS:
            await trickle(writer, content, self.interval)
        elif self.mode in (HANG_MID_STREAM, CLOSE_MID_STREAM):
            writer.write(content[: len(content) // 2])
            await writer.drain()
            if self.mode == HANG_MID_STREAM:
                await asyncio.Event().wait()
        else:
            writer.write(content)
            await writer.drain()

    async def _stream(self, body: dict, writer: asyncio.StreamWriter) -> None:
        events = stream_chunks(body, Behaviour()) + [b"data: [DONE]\n\n"]
        if self.mode in (INVALID_JSON, ERROR_BODY, ERROR_BODY_PRETTY):
            events = {
                INVALID_JSON: [b'data: {"id": "chatcmpl-broken", "choices": [\n\n'],
                ERROR_BODY: [json.dumps(ERROR).encode() + b"\n"],
                ERROR_BODY_PRETTY: [json.dumps(ERROR, indent=2).encode() + b"\n"],
            }[self.mode]
        writer.write(head("text/event-stream", "Transfer-Encoding: chunked"))
        if self.mode == SLOWLORIS:
            await trickle(writer, b"".join(events), self.interval, chunked=True)
        if self.mode == GIGANTIC:
            await send_endless(writer, body)
        if self.mode in (HANG_MID_STREAM, CLOSE_MID_STREAM):
            for event in events[: self.chunks]:
                writer.write(http_chunk(event))
            await writer.drain()
            if self.mode == HANG_MID_STREAM:
                await asyncio.Event().wait()
            return  # the socket is closed without the terminating chunk
        for event in events:
            writer.write(http_chunk(event))
            await writer.drain()
            if self.mode == OK:
                await asyncio.sleep(self.interval)
        writer.write(b"0\r\n\r\n")
        await writer.drain()


async def read_request(reader: asyncio.StreamReader) -> dict | None:
    """The JSON body of one HTTP/1.1 request with a Content-Length (what the gateway sends)."""
    try:
        header = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in header.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return json.loads(await reader.readexactly(length)) if length else {}


def head(content_type: str, framing: str) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{framing}\r\nConnection: close\r\n\r\n".encode()


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def trickle(writer: asyncio.StreamWriter, data: bytes, interval: float, chunked: bool = False) -> None:
    """One byte every `interval` seconds; a byte-long HTTP chunk each when `chunked`. Never returns."""
    for byte in data:
        writer.write(http_chunk(bytes([byte])) if chunked else bytes([byte]))
        await writer.drain()
        await asyncio.sleep(interval)
    await asyncio.Event().wait()


async def send_gigantic(writer: asyncio.StreamWriter, size: int) -> None:
    """A valid chat completion of `size` bytes, most of it one enormous message."""
    opening = b'{"id": "chatcmpl-huge", "object": "chat.completion", "choices": [{"index": 0, "message": {"content": "'
    closing = b'"}, "finish_reason": "stop"}]}'
    filler = size - len(opening) - len(closing)
    writer.write(head("application/json", f"Content-Length: {size}") + opening)
    piece = b"a" * 1024 * 1024
    while filler > 0:
        writer.write(piece[:filler])
        filler -= len(piece)
        await writer.drain()
    writer.write(closing)
    await writer.drain()


async def send_endless(writer: asyncio.StreamWriter, body: dict) -> None:
    """Valid chat chunks at full speed, forever."""
    base = {"id": "chatcmpl-endless", "object": "chat.completion.chunk", "created": 1717000000, "model": body["model"]}
    chunk = {**base, "choices": [{"index": 0, "delta": {"content": CONTENT_PIECE}, "finish_reason": None}]}
    event = http_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
    while True:
        writer.write(event * 16)
        await writer.drain()
