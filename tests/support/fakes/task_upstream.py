"""What the fake Midjourney-Proxy and Suno-API share: scripted submit replies, job outcomes, and jobs that
advance one stage every `step_seconds` (submitted -> in progress -> success or failure)."""

import asyncio
import itertools
import time
from dataclasses import dataclass, field

from aiohttp import web

SUCCESS, FAILURE, STUCK = "success", "failure", "stuck"


@dataclass
class Reply:
    """A scripted answer to the next submit, instead of accepting it."""

    status: int = 200
    body: dict | list | None = None
    delay: float = 0.0


@dataclass
class Job:
    id: str
    action: str
    body: dict
    outcome: str
    created: float
    parent: str | None = None

    def stage(self, step_seconds: float) -> int:
        return int((time.time() - self.created) / step_seconds)


@dataclass
class Recorded:
    path: str
    headers: dict
    body: dict


@dataclass
class FakeTaskUpstream:
    secret: str = "task-upstream-secret"
    step_seconds: float = 0.1
    outcomes: list[str] = field(default_factory=list)  # outcomes of the next accepted jobs; default success
    replies: list[Reply] = field(default_factory=list)
    jobs: dict[str, Job] = field(default_factory=dict)
    submits: list[Recorded] = field(default_factory=list)
    fetches: list[list[str]] = field(default_factory=list)
    port: int = 0
    counter: itertools.count = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.step_seconds = 0.1
        for collected in (self.outcomes, self.replies, self.submits, self.fetches):
            collected.clear()
        self.jobs.clear()

    def new_job(self, job_id: str, action: str, body: dict, parent: str | None = None) -> Job:
        outcome = self.outcomes.pop(0) if self.outcomes else SUCCESS
        job = self.jobs[job_id] = Job(job_id, action, body, outcome, time.time(), parent)
        return job

    async def record(self, request: web.Request) -> dict:
        body = await request.json() if request.can_read_body else {}
        self.submits.append(Recorded(request.path, dict(request.headers), body))
        return body

    async def scripted(self) -> web.Response | None:
        if not self.replies:
            return None
        reply = self.replies.pop(0)
        await asyncio.sleep(reply.delay)
        if reply.body is None and reply.status == 200:
            return None
        return web.json_response(reply.body, status=reply.status)
