"""Request and response shapes of the billing part of the management API (README, "Management API").

The integer types are bounded so that what passes validation fits the database's 64-bit columns (and
their sums): a larger number is a 422 naming the field, not a 500 from the database driver.
"""

from datetime import datetime
from typing import Annotated, Literal

from django.core.exceptions import ValidationError
from ninja import Field, Schema
from ninja.conf import settings as ninja_settings
from ninja.pagination import LimitOffsetPagination
from pydantic import AfterValidator, BeforeValidator, ConfigDict, field_validator

from billing.models import ApiKey, check_group_affinity
from gateway_project.safe_text import UNSTORABLE, has_lone_surrogate

MAX_ID = 2**63 - 1
MAX_QUOTA = 10**15  # 2 billion USD at the default 500 000 quota per USD, far from 2**63 even summed


def integral(value: object) -> object:
    """JSON has one number type: `5.0` is the integer 5 (JSON Schema agrees), `5.5` stays an error."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[int, BeforeValidator(integral)]
Id = Annotated[Integer, Field(ge=1, le=MAX_ID)]
Quota = Annotated[Integer, Field(ge=0, le=MAX_QUOTA)]
Ratio = Annotated[float, Field(ge=0)]
RateLimit = Annotated[Integer, Field(ge=0, le=2_147_483_647)]
RPM_DOC = "Requests per minute; null = the group's limit (RATE_LIMITS), 0 = no limit"
TPM_DOC = "Tokens per minute; null = the group's limit (RATE_LIMITS), 0 = no limit"
ModelName = Annotated[str, Field(pattern=r"\S")]
LogType = Literal["consume", "topup", "refund", "manage", "error"]


def not_a_timestamp(value: object) -> object:
    """pydantic would also read a number (or a numeric string) as Unix time: `0` would silently mean 1970."""
    if isinstance(value, int | float) or (isinstance(value, str) and is_number(value)):
        raise ValueError("must be an ISO-8601 date-time such as 2025-01-31T12:00:00Z")
    return value


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# Lax even in a strict schema: the ISO-8601 text is what the client sends, pydantic parses it.
Moment = Annotated[datetime, Field(strict=False), BeforeValidator(not_a_timestamp)]


MAX_PAGE = 500  # the most rows one page of a list may ask for


class Pagination(LimitOffsetPagination):
    """ninja's `?limit=&offset=`, with an offset the database can take."""

    class Input(Schema):
        limit: int = Field(ninja_settings.PAGINATION_PER_PAGE, ge=1, description="Capped at the list's maximum")
        offset: int = Field(0, ge=0, le=MAX_ID)


class WriteSchema(Schema):
    # Unknown fields are an error, not silently dropped: a typo must not look like a successful change.
    # Strict: JSON has types, and `"5"` for a number or `1` for `true` is a client bug to report, not guess.
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def storable(cls, value: object) -> object:
        """JSON's "\\ud800" is half a UTF-16 pair, which PostgreSQL and MariaDB refuse: a 422 naming the field."""
        if has_lone_surrogate(value):
            raise ValueError(UNSTORABLE)
        return value


class Detail(Schema):
    detail: str


class UserOut(Schema):
    id: int
    username: str
    is_staff: bool
    is_active: bool
    group: str
    quota: int
    used_quota: int
    request_count: int
    rpm_limit: int | None = Field(description=f"{RPM_DOC}; over all the user's keys")
    tpm_limit: int | None = Field(description=f"{TPM_DOC}; over all the user's keys")


class UserCreate(WriteSchema):
    username: str = Field(min_length=1, max_length=150, pattern=r"^[\w.@+-]+$")
    password: str | None = Field(None, description="Write-only; omitted = the user cannot log in to admin")
    is_staff: bool = False
    is_active: bool = True
    group: str = "default"
    quota: Quota = Field(0, description="Starting quota, written to the ledger as a manage log")
    rpm_limit: RateLimit | None = Field(None, description=f"{RPM_DOC}; over all the user's keys")
    tpm_limit: RateLimit | None = Field(None, description=f"{TPM_DOC}; over all the user's keys")


class UserPatch(WriteSchema):
    """Quota is not here: it moves only through POST /api/users/{id}/quota, which logs each change."""

    username: str | None = None
    password: str | None = Field(None, description="Write-only")
    is_staff: bool | None = None
    is_active: bool | None = None
    group: str | None = None
    rpm_limit: RateLimit | None = Field(None, description=f"{RPM_DOC}; over all the user's keys")
    tpm_limit: RateLimit | None = Field(None, description=f"{TPM_DOC}; over all the user's keys")


class QuotaChange(WriteSchema):
    delta: Integer = Field(ge=-MAX_QUOTA, le=MAX_QUOTA, description="Quota to add; negative removes (never below zero)")
    reason: str = Field("", max_length=500)


class TokenOut(Schema):
    id: int
    user_id: int
    name: str
    key_hint: str
    status: Literal["enabled", "disabled"]
    remain_quota: int
    unlimited_quota: bool
    used_quota: int
    expires_at: datetime | None
    models: list[str] | None = Field(description="Allowed models; null = all")
    allow_ips: list[str] | None
    group: str | None
    rpm_limit: int | None = Field(description=RPM_DOC)
    tpm_limit: int | None = Field(description=TPM_DOC)
    created_at: datetime
    accessed_at: datetime | None

    @staticmethod
    def resolve_models(key: ApiKey) -> list[str] | None:
        return key.model_limits


class TokenCreated(TokenOut):
    key: str = Field(description="The full `sk-` key; shown only in this answer")


class TokenCreate(WriteSchema):
    user_id: Id | None = Field(None, description="Staff only; default the caller")
    name: str = ""
    status: Literal["enabled", "disabled"] = "enabled"
    remain_quota: Quota = 0
    unlimited_quota: bool = False
    expires_at: Moment | None = None
    models: list[ModelName] | None = None
    allow_ips: list[str] | None = None
    group: str | None = None
    rpm_limit: RateLimit | None = Field(None, description=f"{RPM_DOC}; users may only lower it")
    tpm_limit: RateLimit | None = Field(None, description=f"{TPM_DOC}; users may only lower it")


class TokenPatch(WriteSchema):
    name: str | None = None
    status: Literal["enabled", "disabled"] | None = None
    remain_quota: Quota | None = None
    unlimited_quota: bool | None = None
    expires_at: Moment | None = None
    models: list[ModelName] | None = None
    allow_ips: list[str] | None = None
    group: str | None = None
    rpm_limit: RateLimit | None = Field(None, description=f"{RPM_DOC}; users may only lower it")
    tpm_limit: RateLimit | None = Field(None, description=f"{TPM_DOC}; users may only lower it")


class LogOut(Schema):
    id: int
    created_at: datetime
    type: LogType
    user_id: int | None
    token_id: int | None
    token_name: str
    channel_id: int | None
    model: str
    prompt_tokens: int = Field(description="All the input, the cache lanes included")
    completion_tokens: int = Field(description="All the output, reasoning included")
    cache_read_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    reasoning_tokens: int
    quota: int
    use_time_ms: int
    is_stream: bool
    content: str


class LogQuery(Schema):
    user_id: Id | None = None
    token_id: Id | None = None
    channel_id: Id | None = None
    model: str | None = None
    type: LogType | None = None
    since: Moment | None = None
    until: Moment | None = None


class LogStats(Schema):
    quota: int
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    reasoning_tokens: int


CACHE_READ_DOC = "Cache read price / input price, per model; a model without one: 1"
CACHE_WRITE_5M_DOC = "5-minute cache write price / input price, per model; a model without one: 1"
CACHE_WRITE_1H_DOC = "1-hour cache write price / input price, per model; a model without one: 1"


GROUP_AFFINITY_DOC = (
    "Channel affinity per group: the sources of a conversation identity it honours (X-Session-Id, prompt_cache_key,"
    " metadata.user_id); [] = off; a group left out: AFFINITY_SOURCES"
)


def known_affinity_sources(value: dict[str, list[str]]) -> dict[str, list[str]]:
    try:
        check_group_affinity(value)
    except ValidationError as error:
        raise ValueError(error.messages[0]) from None
    return value


GroupAffinity = Annotated[dict[str, list[str]], AfterValidator(known_affinity_sources)]


class Prices(WriteSchema):
    """PUT replaces every map given with the one given. The first five are required; a cache map left out
    (a client written before the cache lanes) stays as it is."""

    quota_per_unit: Integer = Field(ge=1, le=MAX_QUOTA)
    model_ratio: dict[str, Ratio]
    completion_ratio: dict[str, Ratio]
    model_price: dict[str, Ratio] = Field(description="USD per call")
    group_ratio: dict[str, Ratio]
    cache_ratio: dict[str, Ratio] | None = Field(None, description=CACHE_READ_DOC)
    create_cache_ratio: dict[str, Ratio] | None = Field(None, description=CACHE_WRITE_5M_DOC)
    create_cache_ratio_1h: dict[str, Ratio] | None = Field(None, description=CACHE_WRITE_1H_DOC)
    group_affinity: GroupAffinity | None = Field(None, description=GROUP_AFFINITY_DOC)


class PricesPatch(WriteSchema):
    """PATCH merges each map given into the stored one (a name given replaces that name's value)."""

    quota_per_unit: Integer | None = Field(None, ge=1, le=MAX_QUOTA)
    model_ratio: dict[str, Ratio] | None = None
    completion_ratio: dict[str, Ratio] | None = None
    model_price: dict[str, Ratio] | None = None
    group_ratio: dict[str, Ratio] | None = None
    cache_ratio: dict[str, Ratio] | None = Field(None, description=CACHE_READ_DOC)
    create_cache_ratio: dict[str, Ratio] | None = Field(None, description=CACHE_WRITE_5M_DOC)
    create_cache_ratio_1h: dict[str, Ratio] | None = Field(None, description=CACHE_WRITE_1H_DOC)
    group_affinity: GroupAffinity | None = Field(None, description=GROUP_AFFINITY_DOC)
