"""Request and response shapes of the billing part of the management API (specs/gateway-api.md)."""

from datetime import datetime
from typing import Annotated, Literal

from ninja import Field, Schema
from pydantic import ConfigDict

from billing.models import Token

Ratio = Annotated[float, Field(ge=0)]
RateLimit = Annotated[int, Field(ge=0, le=2_147_483_647)]
RPM_DOC = "Requests per minute; null = the group's limit (RATE_LIMITS), 0 = no limit"
TPM_DOC = "Tokens per minute; null = the group's limit (RATE_LIMITS), 0 = no limit"
LogType = Literal["consume", "topup", "refund", "manage", "error"]


class WriteSchema(Schema):
    # Unknown fields are an error, not silently dropped: a typo must not look like a successful change.
    model_config = ConfigDict(extra="forbid")


class UserOut(Schema):
    id: int
    username: str
    is_staff: bool
    is_active: bool
    group: str
    quota: int
    used_quota: int
    request_count: int
    rpm_limit: int | None = Field(description=f"{RPM_DOC}; over all the user's keys (set in Django admin)")
    tpm_limit: int | None = Field(description=f"{TPM_DOC}; over all the user's keys (set in Django admin)")


class UserCreate(WriteSchema):
    username: str
    password: str | None = Field(None, description="Write-only; omitted = the user cannot log in to admin")
    is_staff: bool = False
    is_active: bool = True
    group: str = "default"
    quota: int = Field(0, ge=0, description="Starting quota, written to the ledger as a manage log")


class UserPatch(WriteSchema):
    """Quota is not here: it moves only through POST /api/users/{id}/quota, which logs each change."""

    username: str | None = None
    password: str | None = Field(None, description="Write-only")
    is_staff: bool | None = None
    is_active: bool | None = None
    group: str | None = None


class QuotaChange(WriteSchema):
    delta: int = Field(description="Quota to add; negative removes (never below zero)")
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
    def resolve_models(token: Token) -> list[str] | None:
        return token.model_limits


class TokenCreated(TokenOut):
    key: str = Field(description="The full `sk-` key; shown only in this answer")


class TokenCreate(WriteSchema):
    user_id: int | None = Field(None, description="Staff only; default the caller")
    name: str = ""
    status: Literal["enabled", "disabled"] = "enabled"
    remain_quota: int = Field(0, ge=0)
    unlimited_quota: bool = False
    expires_at: datetime | None = None
    models: list[str] | None = None
    allow_ips: list[str] | None = None
    group: str | None = None
    rpm_limit: RateLimit | None = Field(None, description=f"{RPM_DOC}; users may only lower it")
    tpm_limit: RateLimit | None = Field(None, description=f"{TPM_DOC}; users may only lower it")


class TokenPatch(WriteSchema):
    name: str | None = None
    status: Literal["enabled", "disabled"] | None = None
    remain_quota: int | None = Field(None, ge=0)
    unlimited_quota: bool | None = None
    expires_at: datetime | None = None
    models: list[str] | None = None
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
    prompt_tokens: int
    completion_tokens: int
    quota: int
    use_time_ms: int
    is_stream: bool
    content: str


class LogQuery(Schema):
    user_id: int | None = None
    token_id: int | None = None
    channel_id: int | None = None
    model: str | None = None
    type: LogType | None = None
    since: datetime | None = None
    until: datetime | None = None


class LogStats(Schema):
    quota: int
    requests: int
    prompt_tokens: int
    completion_tokens: int


class Prices(WriteSchema):
    """PUT replaces every map with the one given, so all five are required."""

    quota_per_unit: int = Field(ge=1)
    model_ratio: dict[str, Ratio]
    completion_ratio: dict[str, Ratio]
    model_price: dict[str, Ratio] = Field(description="USD per call")
    group_ratio: dict[str, Ratio]


class PricesPatch(WriteSchema):
    """PATCH merges each map given into the stored one (a name given replaces that name's value)."""

    quota_per_unit: int | None = Field(None, ge=1)
    model_ratio: dict[str, Ratio] | None = None
    completion_ratio: dict[str, Ratio] | None = None
    model_price: dict[str, Ratio] | None = None
    group_ratio: dict[str, Ratio] | None = None
