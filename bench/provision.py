"""Prepare the bench database: two channels pointing at the harness's mocks and one key.

Run by bench/run.sh with DATA_DIR set to a scratch folder, so the bench never touches ./data.
"""

import os
import sys

import django

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")
django.setup()

from django.core.management import call_command  # noqa: E402

from billing.models import ApiKey, User  # noqa: E402
from channels_app.models import Channel  # noqa: E402

KEY_BODY = "bench0000000000000000000000000000000000000000000a"  # 48 characters
UPSTREAMS = {"bench-fast": "http://127.0.0.1:18080/v1", "bench-stream": "http://127.0.0.1:18081/v1"}


def main() -> None:
    call_command("migrate", verbosity=0)
    user, _ = User.objects.get_or_create(username="bench", defaults={"quota": 10**15})
    User.objects.filter(pk=user.pk).update(quota=10**15)
    key = ApiKey.objects.filter(user=user).first() or ApiKey(user=user, name="bench")
    key.set_key(KEY_BODY)
    key.unlimited_quota = True
    key.save()
    for model, base_url in UPSTREAMS.items():
        channel = Channel.objects.filter(name=model).first() or Channel(name=model, type="openai")
        channel.base_url, channel.models = base_url, [model]
        channel.key = "sk-bench-upstream"
        channel.save()
    print(f"sk-{KEY_BODY}")


if __name__ == "__main__":
    main()
