"""One task as an upstream reports it: what the task adaptors read from the wire, and what the Task model
and tasks.records apply. Its own module, so that the model and the adaptors need not import each other."""

from dataclasses import dataclass
from datetime import datetime


@dataclass
class TaskUpdate:
    """One task as an upstream reports it, in the gateway's terms (statuses are the wire strings)."""

    upstream_id: str
    status: str
    progress: str = ""
    fail_reason: str = ""
    result_urls: list[str] | None = None
    data: dict | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
