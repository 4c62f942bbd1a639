"""Routes of the task platforms, included by gateway_project/urls.py: Midjourney (also under a speed-mode
prefix) and Suno."""

from django.urls import include, path, re_path

from tasks import views

SUBMIT_ROUTES = "imagine|change|simple-change|blend|describe|action|modal|shorten|upload-discord-images"

midjourney = [
    re_path(rf"^submit/(?P<route>{SUBMIT_ROUTES})$", views.mj_submit),
    re_path(r"^(?P<route>insight-face/swap)$", views.mj_submit),
    path("task/list-by-condition", views.mj_list_by_condition),
    path("task/<str:task_id>/fetch", views.mj_fetch),
    path("task/<str:task_id>/image-seed", views.mj_image_seed),
    path("notify", views.mj_notify),
]

suno = [
    path("submit/<str:action>", views.suno_submit),
    path("fetch", views.suno_fetch_many),
    path("fetch/<str:task_id>", views.suno_fetch),
]

urlpatterns = [
    re_path(r"^(?:(?P<mode>mj-fast|mj-relax|mj-turbo)/)?mj/", include(midjourney)),
    path("suno/", include(suno)),
]
