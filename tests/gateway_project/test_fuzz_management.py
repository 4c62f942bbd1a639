"""Schemathesis against the management API's own OpenAPI document (/api/openapi.json), in process over WSGI.

Whatever arrives -- wrong types, huge or negative numbers, unknown fields, bad JSON, ids that are not ids --
the answer is a status the document lists, in its shape (`{"detail": ...}`), and never a server error the
document does not announce. Three callers: a staff user; a user who is not staff (staff-only operations
answer 403 before reading anything, and nothing of another user's comes back); and nobody, a made-up
token or HTTP Basic (401). Users get no password: hashing one costs more than a dozen cases.
"""

import json
from dataclasses import dataclass
from urllib.parse import unquote

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.test import Client
from django.urls import resolve
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from billing import ledger
from billing.models import AccessToken, Log, User
from tests.support.factories import make_channel, make_key
from tests.support.fuzzing import Tally, fuzz_settings, report

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG = schemathesis.Config.from_dict(
    {
        # Each test sends its caller's Authorization header itself.
        "generation": {"mode": "all", "with-security-parameters": False},
        # Input the document allows may still break a rule it cannot express (an allow_ips entry that is not
        # an address, a username that is taken): that is a 422 naming the field. 5xx: see documented_server_error.
        "checks": {
            "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422", "5xx"]}
        },
    }
)
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application(), config=CONFIG)
# These two send a request to the channel's upstream: with a fuzzed base_url that would be the network.
staff_schema = schema.exclude(path_regex=r"^/api/channels/\{channel_id\}/(test|balance)$")


@dataclass
class World:
    alice: User
    root_token: str
    alice_token: str


@pytest.fixture
def world(transactional_db) -> World:
    root = User.objects.create_user("root", is_staff=True, is_superuser=True, quota=1000)
    alice = User.objects.create_user("alice", quota=1000)
    token, _ = make_key(alice)
    make_channel("http://127.0.0.1:9")
    ledger.write(Log(type=Log.Type.CONSUME, user_id=root.pk, model="gpt-4o", quota=7, request_id="root-request"))
    ledger.write(Log(type=Log.Type.CONSUME, user_id=alice.pk, token_id=token.pk, quota=3, request_id="alice-request"))
    return World(alice, AccessToken.issue(root)[1], AccessToken.issue(alice)[1])


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest):
    cases = Tally("management API fuzz (schemathesis)")
    yield cases
    report(request, cases)


def documented_server_error(ctx, response, case) -> None:
    """A 5xx only where the document announces it (WeChat Pay or an upstream balance being unavailable)."""
    if response.status_code >= 500 and str(response.status_code) not in case.operation.definition.raw["responses"]:
        raise AssertionError(f"{case.method} {case.formatted_path} answered {response.status_code}")


def error_in_shape(ctx, response, case) -> None:
    """Every 4xx is `{"detail": str}`; ninja's 405 for a method the path lacks is text, with an Allow header."""
    if 400 <= response.status_code < 500 and response.status_code != 405:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("detail"), str), body


def call(case, authorization: str | None, tally: Tally, caller: str):
    headers = {"Authorization": authorization} if authorization else {}
    response = case.call(headers=headers)
    tally.add(caller, response.status_code)
    case.validate_response(
        response,
        headers=headers,
        excluded_checks=[not_a_server_error],
        additional_checks=[documented_server_error, error_in_shape],
    )
    return response


def refused_before_the_view(case) -> int | None:
    """404 for a path no operation matches (an id that is not digits), 405 for a method the path lacks
    (Schemathesis tries those too); None when the request reaches the operation."""
    if resolve(unquote(case.formatted_path)).url_name == "no_such_path":
        return 404
    if case.method.upper() != case.operation.method.upper():
        return 405
    return None


def staff_only(case) -> bool:
    return any("StaffAuth" in scheme for scheme in case.operation.definition.raw.get("security", []))


def user_ids(body: object) -> set[int]:
    """Every `user_id` in an answer (an object, a page of items), and the `id` of a user object."""
    items = body.get("items", [body]) if isinstance(body, dict) else []
    found = {item["user_id"] for item in items if isinstance(item, dict) and "user_id" in item}
    return found | ({body["id"]} if isinstance(body, dict) and "username" in body else set())


@staff_schema.parametrize()
@fuzz_settings(25)
def test_staff_never_gets_an_undocumented_answer(case, world, tally):
    call(case, f"Bearer {world.root_token}", tally, "staff token")


@schema.parametrize()
@fuzz_settings(10)
def test_a_user_who_is_not_staff_sees_only_their_own(case, world, tally):
    response = call(case, f"Bearer {world.alice_token}", tally, "non-staff user's token")
    if staff_only(case):
        assert response.status_code == (refused_before_the_view(case) or 403)
    elif response.status_code < 300 and response.content:
        assert user_ids(response.json()) <= {world.alice.pk}


@schema.given(authorization=st.sampled_from([None, "Bearer not-a-token", "Basic cm9vdDpyb290LXBhc3M="]))
@schema.parametrize()
@fuzz_settings(10)
def test_no_valid_token_is_401(case, authorization, world, tally):
    response = call(case, authorization, tally, "no valid token")
    expected = 200 if case.operation.path == "/api/status" else 401
    assert response.status_code == (refused_before_the_view(case) or expected)


# What the fuzzing found, pinned down as plain tests.


def get(path: str, token: str):
    return Client().get(path, headers={"Authorization": f"Bearer {token}"})


def send(method: str, path: str, token: str, body: dict):
    return getattr(Client(), method)(
        path, json.dumps(body), content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )


def test_a_path_id_that_is_not_a_number_is_a_404_in_the_api_shape(world):
    response = get("/api/users/alice", world.root_token)
    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})


@pytest.mark.backend
@pytest.mark.parametrize(
    "path",
    [
        "/api/users/9223372036854775808",
        "/api/tokens?user_id=99999999999999999999",
        "/api/channels?offset=20000000000000000000",
    ],
)
def test_a_number_too_large_for_the_database_is_a_422(world, path):
    response = get(path, world.root_token)
    assert response.status_code == 422, response.content


@pytest.mark.backend
def test_a_quota_too_large_for_the_database_is_a_422(world):
    response = send("post", f"/api/users/{world.alice.pk}/quota", world.root_token, {"delta": 2**63})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("delta:")


@pytest.mark.backend
@pytest.mark.parametrize("field", ["name", "group"])
def test_a_nul_character_in_a_key_field_is_a_422(world, field):
    response = send("post", "/api/tokens", world.root_token, {field: "a\x00b"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{field}:")


@pytest.mark.backend
def test_text_the_database_cannot_compare_is_not_a_500(world):
    # SQLite and MySQL find no such model; PostgreSQL refuses the NUL character: a 422, not a 500.
    assert get("/api/logs?model=a%00b", world.root_token).status_code in (200, 422)


@pytest.mark.parametrize("moment", [0, 1700000000.5, "1700000000"])
def test_a_number_is_not_taken_for_a_date(world, moment):
    response = send("post", "/api/tokens", world.root_token, {"expires_at": moment})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("expires_at:")
    assert get("/api/logs?until=0.5", world.root_token).status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"delta": "5"}, "delta"),
        ({"delta": True}, "delta"),
        ({"delta": 5.5}, "delta"),
    ],
)
def test_json_types_are_not_guessed(world, body, field):
    response = send("post", f"/api/users/{world.alice.pk}/quota", world.root_token, body)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{field}:")


def test_a_whole_number_written_with_a_fraction_is_still_a_whole_number(world):
    response = send("post", f"/api/users/{world.alice.pk}/quota", world.root_token, {"delta": 5.0})
    assert (response.status_code, response.json()["quota"]) == (200, 1005)


def test_a_ratio_is_a_number_not_a_boolean(world):
    response = send("patch", "/api/pricing", world.root_token, {"group_ratio": {"vip": True}})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("group_ratio.vip:")
