"""One asynchronous task (a Midjourney job or a Suno generation) relayed for a user.

A row exists only for a submit an upstream accepted, and is created in the transaction that charges it
(tasks.records). `public_id` is the id the client sees and uses; `upstream_id` is the id the channel's
proxy gave the task, which only goes back to that proxy (follow-ups, polling, notify callbacks).
"""

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from gateway_project.labels import labelled, name_model

if TYPE_CHECKING:
    from tasks.updates import TaskUpdate

# Upstream statuses that are not ours to keep: both end the task without a result.
FAILED_UPSTREAM_STATUSES = {"CANCEL", "CANCELLED", "UNKNOWN"}


def ends_task(update: "TaskUpdate") -> bool:
    """Would this report finish a task (and so possibly move money)?"""
    return update.status in Task.DONE or update.status in FAILED_UPSTREAM_STATUSES or bool(update.fail_reason)


class Task(models.Model):
    class Platform(models.TextChoices):
        MIDJOURNEY = "midjourney"
        SUNO = "suno"

    class Status(models.TextChoices):
        # The strings Midjourney-Proxy and Suno-API use on the wire.
        NOT_START = labelled("NOT_START", _("Not Start"))
        SUBMITTED = labelled("SUBMITTED", _("Submitted"))
        QUEUED = labelled("QUEUED", _("Queued"))
        MODAL = labelled("MODAL", _("Modal"))
        IN_PROGRESS = labelled("IN_PROGRESS", _("In Progress"))
        SUCCESS = labelled("SUCCESS", _("Success"))
        FAILURE = labelled("FAILURE", _("Failure"))

    DONE = (Status.SUCCESS, Status.FAILURE)
    OPEN = (Status.NOT_START, Status.SUBMITTED, Status.QUEUED, Status.MODAL, Status.IN_PROGRESS)

    public_id = models.CharField(max_length=64, unique=True)
    platform = models.CharField(max_length=16, choices=Platform.choices)
    action = models.CharField(
        max_length=32, help_text=_("IMAGINE, UPSCALE, ... for Midjourney; MUSIC or LYRICS for Suno")
    )
    model = models.CharField(max_length=64, help_text=_("The price-table entry charged, e.g. mj_imagine"))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tasks")
    token = models.ForeignKey("billing.ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    channel = models.ForeignKey(
        "channels_app.Channel", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    origin = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="follow_ups", help_text=_("Acted upon")
    )
    upstream_id = models.CharField(max_length=128, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NOT_START)
    progress = models.CharField(max_length=8, default="0%")
    prompt = models.TextField(blank=True, default="")
    fail_reason = models.TextField(blank=True, default="")
    result_urls = models.JSONField(default=list, blank=True, help_text=_("Image or audio URLs"))
    data = models.JSONField(default=dict, blank=True, help_text=_("The task as the upstream last reported it"))
    properties = models.JSONField(default=dict, blank=True, help_text=_("What the client asked (mode, state, ...)"))
    quota = models.BigIntegerField(default=0, help_text=_("Quota charged when the upstream accepted the submit"))
    refunded = models.BooleanField(default=False)
    submitted_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "id"]),
            models.Index(fields=["channel", "upstream_id"]),
            models.Index(fields=["user", "submitted_at"]),
            models.Index(fields=["platform", "submitted_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.platform} {self.action} {self.public_id}"

    @property
    def is_done(self) -> bool:
        return self.status in self.DONE

    def absorb(self, update: "TaskUpdate") -> bool:
        """Take what an upstream report says; True if anything changed."""
        before = self._state_tuple()
        status, reason = update.status, update.fail_reason
        if status in FAILED_UPSTREAM_STATUSES:
            status, reason = self.Status.FAILURE, reason or f"the upstream ended the task as {status}"
        if status in self.Status.values:
            self.status = status
        if reason and self.status != self.Status.SUCCESS:
            # Midjourney-Proxy sets failReason before the status flips: a reason means the job is lost.
            self.status = self.Status.FAILURE
            self.fail_reason = reason[:2000]
        if self.status == self.Status.FAILURE and not self.fail_reason:
            self.fail_reason = "the upstream reported the task as failed"
        if update.progress:
            self.progress = update.progress[:8]
        if update.result_urls is not None:
            self.result_urls = update.result_urls
        if update.data is not None:
            self.data = update.data
        self.started_at = update.started_at or self.started_at
        self.finished_at = update.finished_at or self.finished_at
        if self.is_done:
            self.progress = "100%"
            self.finished_at = self.finished_at or timezone.now()
        return self._state_tuple() != before

    def _state_tuple(self) -> tuple:
        return (
            self.status,
            self.progress,
            self.fail_reason,
            self.result_urls,
            self.data,
            self.started_at,
            self.finished_at,
        )


name_model(
    Task,
    _("task"),
    _("tasks"),
    public_id=_("public id"),
    platform=_("platform"),
    action=_("action"),
    model=_("model"),
    user=_("user"),
    token=_("token"),
    channel=_("channel"),
    origin=_("origin"),
    upstream_id=_("upstream id"),
    status=_("status"),
    progress=_("progress"),
    prompt=_("prompt"),
    fail_reason=_("fail reason"),
    result_urls=_("result urls"),
    data=_("data"),
    properties=_("properties"),
    quota=_("quota"),
    refunded=_("refunded"),
    submitted_at=_("submitted at"),
    started_at=_("started at"),
    finished_at=_("finished at"),
    updated_at=_("updated at"),
)
