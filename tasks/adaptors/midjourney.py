"""Midjourney-Proxy (novicezk/midjourney-proxy and its Plus forks): submits, task reports, client shapes.

Wire format: Midjourney-Proxy's `/mj/submit/*` and `/mj/task/*` API. Clients see the gateway's task
ids (Midjourney-style digits); what goes upstream names the upstream's ids, so a client can never
address a task by an id it was not given.
"""

import re

from django.conf import settings

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
    millis_id,
    to_epoch,
)
from tasks.updates import TaskUpdate

ACCEPTED_CODES = {1, 21, 22}  # submitted, already exists, queued
RETRY_ELSEWHERE_CODES = {3, 23}  # no available account instance, queue full: another channel may serve it
SWAP_FACE_ROUTE = "insight-face/swap"
# Client route -> action; None: the action comes from the body.
SUBMIT_ROUTES: dict[str, str | None] = {
    "imagine": "IMAGINE",
    "blend": "BLEND",
    "describe": "DESCRIBE",
    "shorten": "SHORTEN",
    "upload-discord-images": "UPLOAD",
    "modal": "MODAL",
    "change": None,
    "simple-change": None,
    "action": None,
    SWAP_FACE_ROUTE: "SWAP_FACE",
}
CHANGE_ACTIONS = {"UPSCALE", "VARIATION", "REROLL"}
SIMPLE_CHANGE = re.compile(r"^\s*(\S+)\s+(?:([UV])([1-4])|(R))\s*$", re.IGNORECASE)
CUSTOM_ID_KINDS = {"Outpaint": "ZOOM", "CustomZoom": "CUSTOM_ZOOM", "Inpaint": "INPAINT"}
JOB_VERBS = (
    ("upsample", "UPSCALE"),
    ("low_variation", "LOW_VARIATION"),
    ("high_variation", "HIGH_VARIATION"),
    ("variation", "VARIATION"),
    ("pan", "PAN"),
    ("reroll", "REROLL"),
)
# Of the upstream's task properties only these reach clients; the rest are the proxy's account internals.
CLIENT_PROPERTIES = ("finalPrompt", "finalZhPrompt")


def model_for(action: str) -> str:
    return "swap_face" if action == "SWAP_FACE" else f"mj_{action.lower()}"


def action_from_custom_id(custom_id: str) -> str:
    """`MJ::JOB::upsample::2::<hash>` -> UPSCALE, `MJ::Outpaint::50::1::<hash>::SOLO` -> ZOOM, ..."""
    parts = custom_id.split("::")
    if len(parts) >= 2 and parts[0] == "MJ":
        if parts[1] in CUSTOM_ID_KINDS:
            return CUSTOM_ID_KINDS[parts[1]]
        if parts[1] == "JOB" and len(parts) >= 3:
            for verb, action in JOB_VERBS:
                if parts[2].startswith(verb):
                    return action
    raise TaskError(400, f"customId {custom_id!r} is not a button this gateway can price", "invalid_custom_id")


def required(body: dict, name: str) -> str:
    value = body.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        slug = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()  # customId -> custom_id (new-api's codes)
        raise TaskError(400, f"{name} is required", f"{slug}_is_required")
    return value.strip()


def derive_action(route: str, body: dict) -> tuple[str, str | None]:
    """(action, public id of the task acted on) for one submit route; TaskError when the body is unusable."""
    action = SUBMIT_ROUTES[route]
    if route == "imagine":
        required(body, "prompt")
    elif route == SWAP_FACE_ROUTE:
        required(body, "sourceBase64")
        required(body, "targetBase64")
    elif route == "modal":
        return "MODAL", required(body, "taskId")
    elif route == "action":
        origin = required(body, "taskId")
        return action_from_custom_id(required(body, "customId")), origin
    elif route == "change":
        origin = required(body, "taskId")
        action = str(body.get("action") or "").upper()
        if action not in CHANGE_ACTIONS:
            raise TaskError(400, "action must be UPSCALE, VARIATION or REROLL", "invalid_action")
        if action != "REROLL" and body.get("index") not in (1, 2, 3, 4):
            raise TaskError(400, "index must be 1 to 4", "invalid_index")
        return action, origin
    elif route == "simple-change":
        found = SIMPLE_CHANGE.match(str(body.get("content") or ""))
        if not found:
            message = 'content must be "<taskId> U1..U4", "<taskId> V1..V4" or "<taskId> R"'
            raise TaskError(400, message, "invalid_content")
        letter = (found[2] or "R").upper()
        return {"U": "UPSCALE", "V": "VARIATION", "R": "REROLL"}[letter], found[1]
    return action or "", None


def parse_submit(route: str, body: dict, mode: str | None) -> SubmitSpec:
    action, origin_id = derive_action(route, body)
    upstream_body = {name: value for name, value in body.items() if name not in ("notifyHook", "accountFilter")}
    return SubmitSpec(
        action=action,
        model=model_for(action),
        path=f"/mj/{route}" if route == SWAP_FACE_ROUTE else f"/mj/submit/{route}",
        body=upstream_body,
        prompt=str(body.get("prompt") or ""),
        origin_id=origin_id,
        origin_must_succeed=origin_id is not None and action != "MODAL" and settings.MJ_ACTION_CHECK_SUCCESS,
        properties={"mode": mode or "", "state": str(body.get("state") or "")},
    )


def image_urls(item: dict) -> list[str]:
    urls = [item["imageUrl"]] if isinstance(item.get("imageUrl"), str) and item["imageUrl"] else []
    for extra in item.get("imageUrls") or ():
        url = extra.get("url") if isinstance(extra, dict) else extra
        if isinstance(url, str) and url and url not in urls:
            urls.append(url)
    return urls


def task_update(item: dict) -> TaskUpdate:
    """One Midjourney-Proxy task object (fetch, list-by-condition or notify body) in the gateway's terms."""
    return TaskUpdate(
        upstream_id=str(item.get("id") or ""),
        status=str(item.get("status") or ""),
        progress=str(item.get("progress") or ""),
        fail_reason=str(item.get("failReason") or ""),
        result_urls=image_urls(item),
        data=item,
        started_at=from_epoch(item.get("startTime"), 1000),
        finished_at=from_epoch(item.get("finishTime"), 1000),
    )


class MidjourneyAdaptor(TaskAdaptor):
    platform = "midjourney"
    slug = "midjourney"
    label = "Midjourney-Proxy"
    old_types = (new_api(2), new_api(5))

    def new_public_id(self) -> str:
        return millis_id()

    def auth_headers(self, channel: ChannelInfo) -> dict[str, str]:
        return {"mj-api-secret": channel.key}

    def submit_request(self, channel: ChannelInfo, spec: SubmitSpec) -> UpstreamRequest:
        body = dict(spec.body)
        if settings.SERVER_ADDRESS:
            # The proxy pushes progress here; the channel id tells tasks.notify which upstream speaks.
            body["notifyHook"] = f"{settings.SERVER_ADDRESS}/mj/notify?channel={channel.id}"
        return json_request(channel.base_url + spec.path, self.auth_headers(channel), body)

    def point_at_origin(self, spec: SubmitSpec, upstream_id: str) -> None:
        if spec.path.endswith("/simple-change"):
            spec.body["content"] = spec.body["content"].strip().replace(spec.origin_id or "", upstream_id, 1)
        else:
            spec.body["taskId"] = upstream_id

    def image_seed_request(self, channel: ChannelInfo, upstream_id: str) -> UpstreamRequest:
        url = f"{channel.base_url}/mj/task/{upstream_id}/image-seed"
        return UpstreamRequest(url, self.auth_headers(channel), b"", method="GET")

    def read_submit(self, status: int, content: bytes) -> Verdict:
        body = load(content)
        if status != 200 or not isinstance(body, dict):
            return Verdict(status, content, accepted=False, body=body if isinstance(body, dict) else None)
        code, result = body.get("code"), body.get("result")
        if code not in ACCEPTED_CODES:
            return Verdict(status, content, accepted=False, body=body, retry_elsewhere=code in RETRY_ELSEWHERE_CODES)
        if isinstance(result, list):  # upload-discord-images: done at once, the URLs are the result
            urls = [str(url) for url in result]
            done = TaskUpdate("", "SUCCESS", "100%", result_urls=urls, data={"imageUrls": urls})
            return Verdict(status, content, accepted=True, body=body, initial=done)
        if result in (None, ""):
            # "Accepted" without an id cannot be tracked, refunded or fetched: treat it as refused.
            return Verdict(status, content, accepted=False, body=body)
        return Verdict(status, content, accepted=True, upstream_id=str(result), body=body)

    def accepted_body(self, verdict: Verdict, public_id: str) -> dict:
        body = dict(verdict.body or {})
        if not isinstance(body.get("result"), list):
            body["result"] = public_id
        return body

    def fetch_request(self, channel: ChannelInfo, upstream_ids: list[str]) -> UpstreamRequest:
        url = f"{channel.base_url}/mj/task/list-by-condition"
        return json_request(url, self.auth_headers(channel), {"ids": upstream_ids})

    def read_fetch(self, content: bytes) -> list[TaskUpdate]:
        body = load(content)
        if not isinstance(body, list):
            raise ValueError("list-by-condition did not answer a JSON array")
        return [task_update(item) for item in body if isinstance(item, dict) and item.get("id")]

    def client_task(self, task) -> dict:
        data = task.data or {}
        properties = data.get("properties")
        if not isinstance(properties, dict):
            properties = {}
        return {
            "id": task.public_id,
            "action": task.action,
            "customId": "",
            "botType": data.get("botType") or "",
            "prompt": data.get("prompt") or task.prompt,
            "promptEn": data.get("promptEn") or "",
            "description": data.get("description") or "",
            "state": data.get("state") or task.properties.get("state") or "",
            "submitTime": to_epoch(task.submitted_at, 1000),
            "startTime": to_epoch(task.started_at, 1000),
            "finishTime": to_epoch(task.finished_at, 1000),
            "imageUrl": task.result_urls[0] if task.result_urls else "",
            "status": task.status,
            "progress": task.progress,
            "failReason": task.fail_reason,
            "buttons": data.get("buttons") or [],
            "maskBase64": "",
            "properties": {name: properties[name] for name in CLIENT_PROPERTIES if name in properties},
        }

    def error_body(self, error: TaskError) -> dict:
        # `code` 4 = the request was refused, 5 = the gateway or upstream failed (new-api's convention).
        code = 4 if error.status < 500 else 5
        openai = error.openai_error()
        return {"code": code, "description": error.message, "type": error.code, "result": None, "error": openai}
