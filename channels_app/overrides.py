"""A channel's parameter and header overrides (new-api's `param_override` and `header_override`), kept in its
`config`: what they may hold, and what they do to the body the channel's adaptor built.

`config["param_override"]`: an object of body fields to set in every request the channel sends, after the
request was converted to the upstream's format. A value `null` removes the field. A name with dots is a path
into nested objects (`"thinking.type"`); objects missing on the way are created.

`config["header_override"]`: an object of headers to add or replace. The credential headers the adaptors set
(and the ones that frame the request) cannot be overridden; the values may be secrets, so they are never
logged, and the audit trail records a fingerprint of each (channels_app.channels.AUDITED).
"""

from django.utils.translation import gettext as _

from gateway_project.safe_text import is_header_safe

PARAM_OVERRIDE = "param_override"
HEADER_OVERRIDE = "header_override"
# Every provider's key header (relay.adaptors.base.CREDENTIAL_HEADERS) and the headers HTTP itself sets.
PROTECTED_HEADERS = frozenset(
    {
        "authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "mj-api-secret",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
    }
)
HEADER_NAME_CHARACTERS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def problems(config: object) -> list[str]:
    """What is wrong with the overrides in a channel's config, in words an operator can act on."""
    if not isinstance(config, dict):
        return []
    return [*param_problems(config.get(PARAM_OVERRIDE)), *header_problems(config.get(HEADER_OVERRIDE))]


def param_problems(params: object) -> list[str]:
    if params is None:
        return []
    if not isinstance(params, dict):
        return [_('param_override must be a JSON object of body fields, e.g. {"temperature": 0.2}')]
    bad = sorted(name for name in params if not all(name.split(".")))
    return [_("param_override %(name)r: a field name or dotted path without empty parts") % {"name": n} for n in bad]


def header_problems(headers: object) -> list[str]:
    if headers is None:
        return []
    if not isinstance(headers, dict):
        return [_('header_override must be a JSON object of header names to values, e.g. {"X-Team": "search"}')]
    found = []
    for name, value in headers.items():
        if not name or not set(name) <= HEADER_NAME_CHARACTERS:
            found.append(_("header_override %(name)r is not an HTTP header name") % {"name": name})
        elif name.lower() in PROTECTED_HEADERS:
            found.append(_("header_override cannot set %(name)s: the channel's key sets it") % {"name": name})
        elif not isinstance(value, str) or not is_header_safe(value):
            found.append(_("header_override %(name)s: the value must be printable ASCII text") % {"name": name})
    return found


def overridden_body(body: dict, params: dict) -> dict:
    """`body` with `params` applied; the nested objects on a path are copied, never changed in place."""
    result = dict(body)
    for path, value in params.items():
        *parents, name = path.split(".")
        target: dict | None = result
        for parent in parents:
            target = copied_child(target, parent, create=value is not None)
        if target is not None and value is None:
            target.pop(name, None)
        elif target is not None:
            target[name] = value
    return result


def copied_child(parent: dict | None, name: str, create: bool) -> dict | None:
    """`parent[name]` replaced by a copy of it (or, with `create`, by a new object when it is none), and
    returned; None when there is nothing to descend into."""
    child = parent.get(name) if parent is not None else None
    if parent is None or not (isinstance(child, dict) or create):
        return None
    parent[name] = dict(child) if isinstance(child, dict) else {}
    return parent[name]


def overridden_headers(headers: dict[str, str], overrides: dict[str, str]) -> dict[str, str]:
    """`headers` with `overrides` added, replacing any of the same name in another case."""
    replaced = {name.lower() for name in overrides}
    return {**{name: value for name, value in headers.items() if name.lower() not in replaced}, **overrides}
