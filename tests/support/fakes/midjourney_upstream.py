"""A fake Midjourney-Proxy (Plus) on 127.0.0.1 that speaks its wire format (Midjourney-Proxy's `/mj` API).

Jobs advance with time: SUBMITTED 0% -> IN_PROGRESS 25% -> IN_PROGRESS 75% -> SUCCESS 100% with an image
URL and buttons (or FAILURE with a failReason, or forever IN_PROGRESS when the outcome is "stuck").
Follow-ups must name a job of this very proxy (as a real one, whose Discord account holds the message),
else they get code 3.
"""

import re
import time

from aiohttp import web

from tests.support.fakes.server import serve
from tests.support.fakes.task_upstream import FAILURE, STUCK, FakeTaskUpstream, Job

SEED = "636646138"
FOLLOW_UPS = {"change", "action", "modal", "simple-change"}


def image_url(job: Job, final: bool) -> str:
    return f"https://cdn.discordapp.com/attachments/fake/{job.id}{'' if final else '-preview'}.png"


def view(job: Job, step_seconds: float) -> dict:
    stage = job.stage(step_seconds)
    prompt = job.body.get("prompt") or ""
    ms = int(job.created * 1000)
    task = {
        "id": job.id,
        "action": job.action,
        "prompt": prompt,
        "promptEn": prompt,
        "description": f"/{job.action.lower()} {prompt}".strip(),
        "state": job.body.get("state") or "",
        "submitTime": ms,
        "startTime": ms + int(step_seconds * 1000) if stage >= 1 else 0,
        "finishTime": 0,
        "imageUrl": "",
        "status": "SUBMITTED",
        "progress": "0%",
        "failReason": None,
        "properties": {"discordInstanceId": "1118138338562560102", "finalPrompt": prompt},
        "buttons": [],
    }
    if stage >= 1:
        task.update(status="IN_PROGRESS", progress="25%" if stage == 1 else "75%", imageUrl=image_url(job, False))
    if stage < 3 or job.outcome == STUCK:
        return task
    task["finishTime"] = ms + int(3 * step_seconds * 1000)
    if job.outcome == FAILURE:
        task.update(status="FAILURE", progress="", imageUrl="", failReason="Midjourney could not render the job")
        return task
    buttons = [
        {"customId": f"MJ::JOB::upsample::{n}::{job.id}", "emoji": "", "label": f"U{n}", "type": 2, "style": 2}
        for n in range(1, 5)
    ]
    task.update(status="SUCCESS", progress="100%", imageUrl=image_url(job, True), buttons=buttons)
    return task


class FakeMidjourney(FakeTaskUpstream):
    def new_id(self) -> str:
        return f"{int(time.time() * 1000)}{next(self.counter) % 1000:03d}"

    def authorised(self, request: web.Request) -> bool:
        return request.headers.get("mj-api-secret") == self.secret

    async def submit(self, request: web.Request) -> web.Response:
        if not self.authorised(request):
            return web.Response(status=401)
        body = await self.record(request)
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        route = request.match_info.get("route", "swap_face")
        if route == "upload-discord-images":
            count = len(body["base64Array"])
            urls = [f"https://cdn.discordapp.com/attachments/fake/upload-{n}.png" for n in range(count)]
            return web.json_response({"code": 1, "description": "success", "result": urls})
        parent = None
        if route in FOLLOW_UPS:
            parent = re.split(r"\s+", body["content"])[0] if route == "simple-change" else body.get("taskId")
            if parent not in self.jobs:
                return web.json_response({"code": 3, "description": "related task not found", "result": None})
        action = {"change": body.get("action"), "modal": "MODAL"}.get(route) or route.upper()
        action = "UPSCALE" if route in ("action", "simple-change") else action
        job = self.new_job(self.new_id(), action, body, parent)
        answer = {"code": 1, "description": "Submit success", "result": job.id}
        return web.json_response({**answer, "properties": {"discordInstanceId": "1118138338562560102"}})

    async def list_by_condition(self, request: web.Request) -> web.Response:
        if not self.authorised(request):
            return web.Response(status=401)
        ids = (await request.json()).get("ids") or []
        self.fetches.append(ids)
        return web.json_response([view(self.jobs[i], self.step_seconds) for i in ids if i in self.jobs])

    async def fetch(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        return web.json_response(view(job, self.step_seconds) if job else None)

    async def image_seed(self, request: web.Request) -> web.Response:
        if not self.authorised(request):
            return web.Response(status=401)
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return web.json_response({"code": 3, "description": "task not found", "result": None})
        return web.json_response({"code": 1, "description": "success", "result": SEED})

    def routes(self, app: web.Application) -> None:
        app.router.add_post(r"/mj/submit/{route}", self.submit)
        app.router.add_post(r"/mj/insight-face/swap", self.submit)
        app.router.add_post(r"/mj/task/list-by-condition", self.list_by_condition)
        app.router.add_get(r"/mj/task/{id}/fetch", self.fetch)
        app.router.add_get(r"/mj/task/{id}/image-seed", self.image_seed)


def start_midjourney(secret: str = "mj-upstream-secret") -> FakeMidjourney:
    fake = FakeMidjourney(secret=secret)
    fake.port = serve(fake.routes)
    return fake
