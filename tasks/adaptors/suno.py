"""Suno-API (Suno-API/Suno-API): music and lyrics submits, batch fetch, the `{code, message, data}` wrapper.

Wire format: Suno-API's `/suno/submit/*` and `/suno/fetch`. Clients see the gateway's task ids (UUIDs,
like Suno-API's own); a continuation's `task_id` is swapped for the upstream's id before it leaves.
"""

import uuid

from channels_app.channel_types import new_api
from channels_app.routing import ChannelInfo
from relay.adaptors.base import UpstreamRequest
from tasks.adaptors.base import (
    SubmitSpec,
    TaskAdaptor,
    TaskError,
    Verdict,
    from_epoch,
    json_request,
    load,
    to_epoch,
)
from tasks.updates import TaskUpdate

MODELS = {"MUSIC": "suno_music", "LYRICS": "suno_lyrics"}
DEFAULT_MV = "chirp-v3-0"
SUBMIT_FIELDS = (
    "prompt",
    "tags",
    "title",
    "gpt_description_prompt",
    "mv",
    "make_instrumental",
    "continue_clip_id",
    "continue_at",
    "task_id",
)
# Suno-API reports no percentage; the gateway gives clients a rough one per stage.
STAGE_PROGRESS = {"NOT_START": "0%", "SUBMITTED": "10%", "QUEUED": "20%", "IN_PROGRESS": "50%"}


def parse_submit(action_slug: str, body: dict) -> SubmitSpec:
    action = action_slug.upper()
    if action not in MODELS:
        raise TaskError(400, f"invalid action {action_slug!r}: use music or lyrics", "invalid_action")
    upstream = {name: body[name] for name in SUBMIT_FIELDS if body.get(name) not in (None, "")}
    origin_id = None
    if action == "LYRICS":
        if not isinstance(upstream.get("prompt"), str) or not upstream["prompt"].strip():
            raise TaskError(400, "prompt is required", "prompt_empty")
        upstream.pop("task_id", None)
    else:
        upstream["mv"] = upstream.get("mv") or DEFAULT_MV
        if upstream.get("continue_clip_id"):
            if not upstream.get("task_id"):
                raise TaskError(400, "task_id is required with continue_clip_id", "task_id_required")
            origin_id = str(upstream["task_id"])
        else:
            upstream.pop("task_id", None)
    prompt = upstream.get("gpt_description_prompt") or upstream.get("prompt") or ""
    return SubmitSpec(
        action=action,
        model=MODELS[action],
        path=f"/suno/submit/{action}",
        body=upstream,
        prompt=str(prompt),
        origin_id=origin_id,
        properties={"mv": str(upstream.get("mv") or ""), "title": str(upstream.get("title") or "")},
    )


def clip_urls(data: object) -> list[str]:
    if not isinstance(data, list):
        return []
    return [clip["audio_url"] for clip in data if isinstance(clip, dict) and clip.get("audio_url")]


def task_update(item: dict) -> TaskUpdate:
    status = str(item.get("status") or "")
    return TaskUpdate(
        upstream_id=str(item.get("task_id") or ""),
        status=status,
        progress=str(item.get("progress") or STAGE_PROGRESS.get(status, "")),
        fail_reason=str(item.get("fail_reason") or ""),
        result_urls=clip_urls(item.get("data")),
        data=item,
        started_at=from_epoch(item.get("start_time"), 1),
        finished_at=from_epoch(item.get("finish_time"), 1),
    )


class SunoAdaptor(TaskAdaptor):
    platform = "suno"
    slug = "suno"
    label = "Suno-API"
    old_types = (new_api(36),)

    def new_public_id(self) -> str:
        return str(uuid.uuid4())

    def auth_headers(self, channel: ChannelInfo) -> dict[str, str]:
        return {"Authorization": f"Bearer {channel.key}"}

    def point_at_origin(self, spec: SubmitSpec, upstream_id: str) -> None:
        spec.body["task_id"] = upstream_id

    def read_submit(self, status: int, content: bytes) -> Verdict:
        body = load(content)
        if not isinstance(body, dict):
            return Verdict(status, content, accepted=False)
        data = body.get("data")
        if status == 200 and body.get("code") == "success" and isinstance(data, str) and data:
            return Verdict(status, content, accepted=True, upstream_id=data, body=body)
        return Verdict(status, content, accepted=False, body=body)

    def accepted_body(self, verdict: Verdict, public_id: str) -> dict:
        return {"code": "success", "message": (verdict.body or {}).get("message") or "", "data": public_id}

    def fetch_request(self, channel: ChannelInfo, upstream_ids: list[str]) -> UpstreamRequest:
        return json_request(f"{channel.base_url}/suno/fetch", self.auth_headers(channel), {"ids": upstream_ids})

    def read_fetch(self, content: bytes) -> list[TaskUpdate]:
        body = load(content)
        if not isinstance(body, dict) or body.get("code") != "success" or not isinstance(body.get("data"), list):
            raise ValueError("Suno fetch did not answer {code: success, data: [...]}")
        return [task_update(item) for item in body["data"] if isinstance(item, dict) and item.get("task_id")]

    def client_task(self, task) -> dict:
        return {
            "task_id": task.public_id,
            "action": task.action,
            "status": task.status,
            "fail_reason": task.fail_reason,
            "submit_time": to_epoch(task.submitted_at, 1),
            "start_time": to_epoch(task.started_at, 1),
            "finish_time": to_epoch(task.finished_at, 1),
            "progress": task.progress,
            "data": (task.data or {}).get("data"),
        }

    def found_body(self, payload: object) -> object:
        return {"code": "success", "message": "", "data": payload}

    def error_body(self, error: TaskError) -> dict:
        return {"code": error.code, "message": error.message, "data": None, "error": error.openai_error()}
