"""A fake Suno-API on 127.0.0.1 that speaks its wire format (Suno-API's `/suno` API).

A music job makes two clips and advances with time: SUBMITTED (clips "submitted") -> IN_PROGRESS (clips
"streaming") -> SUCCESS (clips "complete" with audio URLs) or FAILURE (clips "error"). Lyrics are ready
at once. A continuation must name a task of this very server.
"""

import uuid

from aiohttp import web

from tests.support.fakes.server import serve
from tests.support.fakes.task_upstream import FAILURE, STUCK, FakeTaskUpstream, Job

ERROR_MESSAGE = "Unable to generate music right now"


def clips(job: Job, stage: int) -> list[dict]:
    status = ["submitted", "streaming"][stage] if stage < 2 or job.outcome == STUCK else "complete"
    if stage >= 2 and job.outcome == FAILURE:
        status = "error"
    made = []
    for n in (1, 2):
        clip_id = f"{job.id[:8]}-clip-{n}"
        clip = {"id": clip_id, "status": status, "title": job.body.get("title") or "Fake song", "metadata": {}}
        if status in ("streaming", "complete"):
            clip["audio_url"] = f"https://cdn1.suno.ai/{clip_id}.mp3"
        if status == "complete":
            clip.update(
                video_url=f"https://cdn1.suno.ai/{clip_id}.mp4", image_url=f"https://cdn2.suno.ai/{clip_id}.png"
            )
        if status == "error":
            clip["metadata"] = {"error_type": "generation", "error_message": ERROR_MESSAGE}
        made.append(clip)
    return made


def view(job: Job, step_seconds: float) -> dict:
    created = int(job.created)
    task = {"task_id": job.id, "action": job.action, "submit_time": created, "start_time": 0, "finish_time": 0}
    if job.action == "LYRICS":
        lyrics = {"id": job.id, "status": "complete", "title": "Autumn Trains", "text": "[Verse]\nRails hum..."}
        return {**task, "status": "SUCCESS", "fail_reason": "", "finish_time": created, "data": lyrics}
    stage = job.stage(step_seconds)
    status = "SUBMITTED" if stage == 0 else "IN_PROGRESS"
    if stage >= 2 and job.outcome != STUCK:
        status = "FAILURE" if job.outcome == FAILURE else "SUCCESS"
    return {
        **task,
        "status": status,
        "fail_reason": ERROR_MESSAGE if status == "FAILURE" else "",
        "start_time": created + 1 if stage >= 1 else 0,
        "finish_time": created + 2 if status in ("SUCCESS", "FAILURE") else 0,
        "data": clips(job, min(stage, 2)),
    }


def failed(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message, "data": None}, status=status)


class FakeSuno(FakeTaskUpstream):
    def authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.secret}"

    async def submit(self, request: web.Request) -> web.Response:
        if not self.authorised(request):
            return failed(401, "unauthorized", "invalid token")
        body = await self.record(request)
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        action = request.match_info["action"].upper()
        if action not in ("MUSIC", "LYRICS"):
            return failed(400, "invalid_request", "invalid action")
        if action == "LYRICS" and not body.get("prompt"):
            return failed(400, "invalid_request", "prompt is empty")
        parent = body.get("task_id") if body.get("continue_clip_id") else None
        if parent is not None and parent not in self.jobs:
            return failed(400, "invalid_request", "task not found")
        job = self.new_job(str(uuid.uuid4()), action, body, parent)
        return web.json_response({"code": "success", "message": "", "data": job.id})

    async def fetch_many(self, request: web.Request) -> web.Response:
        if not self.authorised(request):
            return failed(401, "unauthorized", "invalid token")
        ids = (await request.json()).get("ids") or []
        self.fetches.append(ids)
        found = [view(self.jobs[i], self.step_seconds) for i in ids if i in self.jobs]
        return web.json_response({"code": "success", "message": "", "data": found})

    async def fetch_one(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return failed(400, "invalid_request", "task not found")
        return web.json_response({"code": "success", "message": "", "data": view(job, self.step_seconds)["data"]})

    def routes(self, app: web.Application) -> None:
        app.router.add_post(r"/suno/submit/{action}", self.submit)
        app.router.add_post(r"/suno/fetch", self.fetch_many)
        app.router.add_get(r"/suno/fetch/{id}", self.fetch_one)


def start_suno(secret: str = "suno-upstream-secret") -> FakeSuno:
    fake = FakeSuno(secret=secret)
    fake.port = serve(fake.routes)
    return fake
