"""A fake Cloudflare Turnstile siteverify endpoint: `POST /turnstile/v0/siteverify` (a form with secret,
response and remoteip) answers success for the token GOOD_TOKEN with the secret SECRET, as Cloudflare does."""

from dataclasses import dataclass, field

from aiohttp import web

from tests.support.fakes.server import serve

SECRET = "0x4AAAAAAA-test-secret"
SITE_KEY = "0x4AAAAAAA-test-site-key"
GOOD_TOKEN = "solved-by-a-human"


@dataclass
class FakeTurnstile:
    asked: list[dict] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/turnstile/v0/siteverify"

    def settings(self) -> dict:
        return {"TURNSTILE_SITE_KEY": SITE_KEY, "TURNSTILE_SECRET_KEY": SECRET, "TURNSTILE_VERIFY_URL": self.url}

    async def siteverify(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.asked.append(form)
        if form.get("secret") != SECRET:
            return web.json_response({"success": False, "error-codes": ["invalid-input-secret"]})
        if form.get("response") != GOOD_TOKEN:
            return web.json_response({"success": False, "error-codes": ["invalid-input-response"]})
        return web.json_response({"success": True, "hostname": "testserver", "error-codes": []})


def start() -> FakeTurnstile:
    fake = FakeTurnstile()
    fake.port = serve(lambda app: app.router.add_post("/turnstile/v0/siteverify", fake.siteverify))
    return fake
