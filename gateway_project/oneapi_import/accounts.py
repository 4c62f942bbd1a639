"""Users and their API keys. Passwords cannot move unless Django can check one-api's bcrypt hashes; keys keep
working because only their hash is stored, here as there."""

from functools import partial

from django.contrib.auth.hashers import get_hasher

from billing.models import ApiKey, User, hash_key
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
