"""Django admin for tasks: read-only (money moves only through tasks.records), with one action to give up
on stuck tasks, which fails and refunds them exactly like the poller's timeout."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from tasks import records
from tasks.models import Task


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = (
        "public_id",
        "platform",
        "action",
        "status",
        "progress",
        "user",
        "channel",
        "quota",
        "refunded",
        "submitted_at",
        "finished_at",
    )
    list_filter = ("platform", "status", "action", "refunded", "channel", "submitted_at")
    search_fields = ("public_id", "upstream_id", "user__username", "prompt")
    date_hierarchy = "submitted_at"
    list_select_related = ("user", "channel")
    ordering = ("-submitted_at",)
    actions = ("fail_and_refund",)

    def get_readonly_fields(self, request: HttpRequest, obj: Task | None = None) -> list[str]:
        return [field.name for field in Task._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=_("Give up on selected open tasks (fail and refund)"))
    def fail_and_refund(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        reason = f"given up by {request.user.get_username()} in admin"
        open_pks = queryset.filter(status__in=Task.OPEN).values_list("pk", flat=True)
        failed = sum(records.fail(pk, reason) for pk in open_pks)
        messages.success(request, _("%(count)d task(s) failed and refunded") % {"count": failed})
