"""Management API: `GET /api/tasks` (staff: every task; users: their own). Mounted in gateway_project/api.py."""

from datetime import datetime

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from ninja.pagination import paginate

from billing.schemas import Id, Pagination
from tasks.models import Task
from tasks.records import visible_tasks

MAX_PAGE = 500

router = Router(tags=["tasks"])


class TaskOut(Schema):
    id: str = Field(alias="public_id", description="The id clients see")
    platform: str
    action: str
    model: str
    status: str
    progress: str
    user_id: int
    channel_id: int | None
    quota: int
    refunded: bool
    prompt: str
    fail_reason: str
    result_urls: list[str]
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TaskQuery(Schema):
    platform: Task.Platform | None = None
    status: Task.Status | None = None
    user_id: Id | None = Field(None, description="Staff only (others may give their own id)")


@router.get("", response=list[TaskOut])
@paginate(Pagination, max_limit=MAX_PAGE)
def list_tasks(request: HttpRequest, filters: Query[TaskQuery]):
    return visible_tasks(request.auth, filters.platform, filters.status, filters.user_id)
