"""Admin and console CSS are served by the gateway itself after collectstatic (WhiteNoise)."""

from django.core.management import call_command
from django.test import Client, override_settings


def test_collected_static_files_are_served(tmp_path):
    with override_settings(STATIC_ROOT=tmp_path):
        call_command("collectstatic", interactive=False, verbosity=0)
        response = Client().get("/static/console/console.css")
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == (tmp_path / "console" / "console.css").read_bytes()
        assert Client().get("/static/admin/css/base.css").status_code == 200
