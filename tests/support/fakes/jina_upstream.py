"""A fake Jina rerank API: `/v1/rerank` in Jina's format, usage as `total_tokens` only, documents
returned unless `return_documents` is false (Jina's default). Errors are `{"detail": "..."}`."""

from aiohttp import web

from tests.support.fakes.recording import Behaviour, RecordingFake, rerank_results

API_KEY = "jina_upstream_secret"
TOTAL_TOKENS = 58
INVALID_KEY = {"detail": "Invalid API key. Please get a new API key from https://jina.ai"}


class FakeJina(RecordingFake):
    api_key = API_KEY
    auth_error = INVALID_KEY

    async def answer(self, request: web.Request, body: dict, behaviour: Behaviour) -> web.StreamResponse:
        results = rerank_results(body, body.get("return_documents", True))
        usage = {"total_tokens": TOTAL_TOKENS} if behaviour.usage else {}
        return web.json_response({"model": body["model"], "usage": usage, "results": results})
