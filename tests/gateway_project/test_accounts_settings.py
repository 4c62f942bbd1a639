"""The accounts' settings come from one-api's environment variable names (README "Accounts and sign-up")."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOWN = [
    "EMAIL_BACKEND",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_USE_SSL",
    "EMAIL_USE_TLS",
    "EMAIL_HOST_USER",
    "DEFAULT_FROM_EMAIL",
    "ACCOUNT_EMAIL_VERIFICATION",
    "EMAIL_DOMAIN_WHITELIST",
    "SOCIALACCOUNT_PROVIDERS",
]


def settings_with(**env: str) -> subprocess.CompletedProcess:
    """Load the settings in a fresh interpreter with `env`; its output is the SHOWN settings as JSON."""
    script = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name, None) for name in {SHOWN!r}}}))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gateway_project.settings", "SMTP_SERVER": "", **env}
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)


def test_without_smtp_mail_goes_to_the_log_and_verification_is_required():
    shown = json.loads(settings_with().stdout)
    assert shown["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert shown["ACCOUNT_EMAIL_VERIFICATION"] == "mandatory" and shown["SOCIALACCOUNT_PROVIDERS"] == {}


def test_smtp_over_ssl_on_465_and_the_providers_from_the_environment():
    shown = json.loads(
        settings_with(
            SMTP_SERVER="smtp.example.com",
            SMTP_PORT="465",
            SMTP_ACCOUNT="gw@example.com",
            SMTP_TOKEN="app-password",
            EMAIL_VERIFICATION_REQUIRED="false",
            EMAIL_DOMAIN_WHITELIST="Example.com, @corp.example,",
            GITHUB_CLIENT_ID="gh-id",
            GITHUB_CLIENT_SECRET="gh-secret",
            OIDC_NAME="Corp SSO",
            OIDC_SERVER_URL="https://id.corp.example",
            OIDC_CLIENT_ID="oidc-id",
            OIDC_CLIENT_SECRET="oidc-secret",
        ).stdout
    )
    assert (shown["EMAIL_HOST"], shown["EMAIL_PORT"], shown["EMAIL_USE_SSL"], shown["EMAIL_USE_TLS"]) == (
        "smtp.example.com",
        465,
        True,
        False,
    )
    assert shown["DEFAULT_FROM_EMAIL"] == "gw@example.com" and shown["ACCOUNT_EMAIL_VERIFICATION"] == "optional"
    assert shown["EMAIL_DOMAIN_WHITELIST"] == ["example.com", "corp.example"]
    providers = shown["SOCIALACCOUNT_PROVIDERS"]
    assert providers["github"]["APPS"] == [{"client_id": "gh-id", "secret": "gh-secret"}]
    (oidc,) = providers["openid_connect"]["APPS"]
    assert (oidc["provider_id"], oidc["name"], oidc["settings"]) == (
        "sso",
        "Corp SSO",
        {"server_url": "https://id.corp.example"},
    )


def test_smtp_uses_starttls_on_other_ports():
    shown = json.loads(settings_with(SMTP_SERVER="smtp.example.com", SMTP_FROM="Gateway <no-reply@example.com>").stdout)
    assert (shown["EMAIL_PORT"], shown["EMAIL_USE_TLS"], shown["EMAIL_USE_SSL"]) == (587, True, False)
    assert shown["DEFAULT_FROM_EMAIL"] == "Gateway <no-reply@example.com>"


def test_half_configured_settings_fail_at_start_up():
    assert "TURNSTILE_SECRET_KEY" in settings_with(TURNSTILE_SITE_KEY="site-key").stderr
    assert "OIDC_SERVER_URL" in settings_with(OIDC_CLIENT_ID="oidc-id").stderr
