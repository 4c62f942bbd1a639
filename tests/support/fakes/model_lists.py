"""A fake of the model-list endpoints of the providers that have one besides OpenAI (tests/support/fakes/
openai_upstream.py serves OpenAI's), in their wire formats: Gemini's `GET /v1beta/models` (key in the query),
Anthropic's `GET /v1/models` (x-api-key, anthropic-version) and Ollama's `GET /api/tags`."""

from aiohttp import web

from tests.support.fakes.server import serve

KEY = "upstream-list-secret"
GEMINI_MODELS = ["gemini-2.0-flash", "gemini-2.5-pro", "text-embedding-004"]
ANTHROPIC_MODELS = ["claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"]
OLLAMA_MODELS = ["llama3.2:latest", "qwen2.5:7b"]


async def gemini(request: web.Request) -> web.Response:
    if request.query.get("key") != KEY:
        error = {"code": 400, "message": f"API key not valid: {request.query.get('key')}", "status": "INVALID_ARGUMENT"}
        return web.json_response({"error": error}, status=400)
    models = [{"name": f"models/{name}", "displayName": name.title()} for name in GEMINI_MODELS]
    return web.json_response({"models": models})


async def anthropic(request: web.Request) -> web.Response:
    if request.headers.get("x-api-key") != KEY or not request.headers.get("anthropic-version"):
        error = {"type": "authentication_error", "message": "invalid x-api-key"}
        return web.json_response({"type": "error", "error": error}, status=401)
    data = [{"type": "model", "id": name, "display_name": name} for name in ANTHROPIC_MODELS]
    return web.json_response({"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})


async def ollama(request: web.Request) -> web.Response:
    models = [{"name": name, "model": name, "size": 2019393189} for name in OLLAMA_MODELS]
    return web.json_response({"models": models})


def start() -> str:
    """Serve the fake; its base URL."""

    def routes(app: web.Application) -> None:
        app.router.add_get("/v1beta/models", gemini)
        app.router.add_get("/v1/models", anthropic)
        app.router.add_get("/api/tags", ollama)

    return f"http://127.0.0.1:{serve(routes)}"
