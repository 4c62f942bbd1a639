"""Users and their API keys. Passwords cannot move unless Django can check one-api's bcrypt hashes; keys keep
working because only their hash is stored, here as there. What else lets a returning user in moves too: their
email (verified, to sign in by it and reset the password), their GitHub account and their invite code and
inviter."""

from collections.abc import Callable
from functools import partial

from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.hashers import get_hasher
from django.db import models
from django.utils import timezone

from billing.models import ApiKey, SignUp, User, hash_key
from gateway_project.oneapi_import.run import Run, rows_by
from gateway_project.oneapi_import.values import moment, names, text


def bcrypt_usable() -> bool:
    """Django can check one-api's bcrypt hashes only with BCryptPasswordHasher enabled and bcrypt installed."""
    try:
        get_hasher("bcrypt")._load_library()
    except ValueError:
        return False
    return True


class AccountImport(Run):
    def import_users(self) -> None:
        rows = list(self.live_rows("users"))
        existing = rows_by(User, "username", [text(row["username"]) for row in rows])
        keep_hashes = bcrypt_usable()
        unusable = 0
        for row in rows:
            username = text(row["username"])
            role = int(row.get("role") or 1)
            values = {
                "quota": int(row.get("quota") or 0),
                "used_quota": int(row.get("used_quota") or 0),
                "request_count": int(row.get("request_count") or 0),
                "group": text(row.get("group")) or "default",
                "is_staff": role >= 10,
                "is_superuser": role >= 100,
                "is_active": int(row.get("status") or 1) != 2,
                "email": text(row.get("email"))[:254],
                "invite_code": text(row.get("aff_code"))[:16] or None,
            }
            password = text(row.get("password"))
            unusable += int(existing.get(username) is None and not (keep_hashes and password.startswith("$2")))
            make = partial(_new_user, username, password, keep_hashes)
            label = f"user {username!r} (quota {values['quota']})"
            self.users_by_source_id[int(row["id"])] = self.sync("users", existing.get(username), make, values, label)
        if unusable:
            self.note(
                f"{unusable} imported users have no usable password here (one-api stores bcrypt hashes; enable"
                " BCryptPasswordHasher with the bcrypt package to keep them): they must be given a new one"
            )
        for row in rows:
            self.import_sign_in_links(row, self.users_by_source_id[int(row["id"])])

    def import_sign_in_links(self, row: dict, user: User) -> None:
        """The user's email, GitHub account and inviter, each once (a second run finds them and adds nothing).
        one-api kept a GitHub user's login name, allauth keeps the numeric id: the account is stored under the
        name and takes the id on its first sign-in (billing.accounts.signup.SocialAccountAdapter)."""
        email, github = text(row.get("email"))[:254], text(row.get("github_id"))
        inviter = self.users_by_source_id.get(int(row.get("inviter_id") or 0))
        if email and not EmailAddress.objects.filter(email__iexact=email).exists():
            self.link(user, f"email {email}", partial(EmailAddress, email=email, verified=True, primary=True))
        if github and not SocialAccount.objects.filter(provider="github", uid=github).exists():
            self.link(user, f"GitHub account {github}", partial(SocialAccount, provider="github", uid=github))
        if inviter is not None and not SignUp.objects.filter(user_id=user.pk).exists():
            # one-api paid the invitation long ago: recorded as credited, with nothing to pay here
            self.link(user, f"inviter {inviter.username}", partial(SignUp, inviter=inviter, credited_at=timezone.now()))

    def link(self, user: User, what: str, make: Callable[..., models.Model]) -> None:
        self.report.actions.append(f"link user {user.username!r} to {what}")
        if not self.dry_run:
            make(user=user).save()

    def import_tokens(self) -> None:
        rows = list(self.live_rows("tokens"))
        bodies = {int(row["id"]): text(row["key"]).strip().removeprefix("sk-") for row in rows}
        existing = rows_by(ApiKey, "key_hash", [hash_key(body) for body in bodies.values()])
        for row in rows:
            body = bodies[int(row["id"])]
            user = self.users_by_source_id.get(int(row.get("user_id") or 0))
            label = f"key #{row['id']} {text(row.get('name'))!r} (sk-{body[:4]}...{body[-4:]})"
            if user is None or not body:
                self.note(f"{label}: {'its user is not imported' if body else 'no key'}: skipped")
                self.report.tallies["tokens"].skipped += 1
                continue
            values = self.token_values(row, label)
            make = partial(_new_key, user, body)
            self.sync("tokens", existing.get(hash_key(body)), make, values, f"{label} of {user.username!r}")

    def token_values(self, row: dict, label: str) -> dict:
        status = "enabled" if int(row.get("status") or 0) == 1 else "disabled"
        limits = None
        if "model_limits_enabled" in row:  # new-api
            if row["model_limits_enabled"]:
                limits = names(row.get("model_limits"))
                if not limits and status == "enabled":
                    # new-api: limits on with an empty list allows nothing; here an empty list allows all.
                    self.note(f"{label}: model limits allow no model there: imported disabled")
                    status = "disabled"
        else:  # one-api: `models`, empty = all
            limits = names(row.get("models"))
        allow_ips = names(row.get("allow_ips"), "\n") or names(row.get("subnet"))
        return {
            "name": text(row.get("name"))[:64],
            "status": status,
            "remain_quota": int(row.get("remain_quota") or 0),
            "used_quota": int(row.get("used_quota") or 0),
            "unlimited_quota": bool(row.get("unlimited_quota")),
            "expires_at": moment(row.get("expired_time")),
            "model_limits": limits or None,
            "allow_ips": allow_ips or None,
            "group": text(row.get("group")) or None,
            **({"created_at": moment(row.get("created_time"))} if moment(row.get("created_time")) else {}),
        }


def _new_user(username: str, password_hash: str, keep_hashes: bool) -> User:
    user = User(username=username)
    if keep_hashes and password_hash.startswith("$2"):
        user.password = f"bcrypt${password_hash}"
    else:
        user.set_unusable_password()
    return user


def _new_key(user: User, body: str) -> ApiKey:
    key = ApiKey(user=user)
    key.set_key(body)
    return key
