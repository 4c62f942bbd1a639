"""Routes of the task platforms, included by relay/urls.py (Midjourney under an optional speed-mode prefix)."""

from django.urls import path, re_path

from relay import task_views

SUBMIT_ROUTES = "imagine|change|simple-change|blend|describe|action|modal|shorten|upload-discord-images"

midjourney = [
    re_path(rf"^submit/(?P<route>{SUBMIT_ROUTES})$", task_views.mj_submit),
    re_path(r"^(?P<route>insight-face/swap)$", task_views.mj_submit),
    path("task/list-by-condition", task_views.mj_list_by_condition),
    path("task/<str:task_id>/fetch", task_views.mj_fetch),
    path("task/<str:task_id>/image-seed", task_views.mj_image_seed),
    path("notify", task_views.mj_notify),
]

suno = [
    path("submit/<str:action>", task_views.suno_submit),
    path("fetch", task_views.suno_fetch_many),
    path("fetch/<str:task_id>", task_views.suno_fetch),
]
