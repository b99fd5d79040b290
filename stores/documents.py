"""Model pieces shared by the stores: UTC timestamps and the `_id` ⇄ `id` mapping."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from bson import ObjectId
from bson.errors import InvalidId
from pydantic import AfterValidator, BaseModel

M = TypeVar("M", bound=BaseModel)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are UTC (BSON dates read without `tz_aware`); aware ones are converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


def utc_now() -> datetime:
    """Now in UTC, cut to the millisecond a BSON date keeps, so stored == returned."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def object_id(value: str) -> ObjectId | None:
    """The ObjectId spelled by `value`, or None if it is not one."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


def from_document(model: type[M], document: Mapping[str, Any]) -> M:
    """Validate a stored document as `model`, exposing `_id` as the string `id`."""
    fields = {key: value for key, value in document.items() if key != "_id"}
    return model.model_validate({**fields, "id": str(document["_id"])})
