"""One declaration per API endpoint (`Operation`), from which its route and its OpenAPI entry
are both made, so the two cannot drift apart; and the edge where requests become calls.

The edge authenticates the bearer key, validates the body and the query against the declared
models, runs the handler scoped to the key's `userId`, and maps every `ApiError` to the envelope.
A body nested deeper than `MAX_NESTING` is refused (422) before it is parsed, and the database's
refusal of a document made from the input is the client's error (409 / 413 / 422), not a 500.
(How large a body may be is `voice_server.body_limits`' business, before any route reads it.)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bson.errors import InvalidDocument
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pymongo.errors import DocumentTooLarge, DuplicateKeyError, WriteError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stores.api_keys import ApiKey
from stores.owned import MAX_PAGE, Listing, ListQuery
from voice_server.api.envelope import ApiError, conflict, failure, invalid, invalid_input, success
from voice_server.api.json_depth import MAX_NESTING, nesting_exceeds
from voice_server.log import get_logger
from voice_server.services import Services

log = get_logger(__name__)
MAX_OFFSET = 100_000
# BSONObjectTooLarge, and "Resulting document after update is larger than …".
_TOO_LARGE_CODES = frozenset({10334, 17419})


class Paging(BaseModel):
    """The query parameters every list takes besides its filters."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    sort: str | None = None


class Pagination(BaseModel):
    limit: int
    offset: int
    hasMore: bool


class NoFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ApiRequest:
    """What a handler gets: the stores, the caller's `userId` and the validated input."""

    services: Services
    user_id: str
    key_id: str  # the API key the request came with
    doc_id: str
    body: Any
    listing: ListQuery
    query: Any = None  # the validated `Operation.query` of a single-item operation


Handler = Callable[[ApiRequest], Awaitable[BaseModel | Listing[Any]]]


@dataclass(frozen=True)
class Operation:
    """One endpoint: `data` is the model of what it answers (a list of them when `many`)."""

    method: str
    path: str
    summary: str
    tag: str
    handler: Handler
    data: type[BaseModel]
    status: int = 200
    body: type[BaseModel] | None = None
    filters: type[BaseModel] | None = None
    query: type[BaseModel] | None = None  # query parameters of an operation that is no list
    sorts: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()

    @property
    def many(self) -> bool:
        return self.filters is not None

    def route(self) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                return await self._answer(request)
            except ApiError as error:
                return failure(error)

        return Route(self.path, endpoint, methods=[self.method], name=f"{self.method} {self.path}")

    async def _answer(self, request: Request) -> Response:
        services: Services = request.state.services
        key = await authenticate(services, request)
        api_request = ApiRequest(
            services=services,
            user_id=key.userId,
            key_id=key.id,
            doc_id=request.path_params.get("id", ""),
            body=await self._body(request),
            listing=self._listing(request),
            query=self._query(request),
        )
        try:
            result = await self.handler(api_request)
        except (DocumentTooLarge, InvalidDocument, WriteError) as error:
            raise storage_refusal(error) from None
        if isinstance(result, Listing):
            page = Pagination(
                limit=api_request.listing.limit,
                offset=api_request.listing.offset,
                hasMore=result.has_more,
            )
            items = [self._shown(item) for item in result.items]
            return success(data=items, pagination=page.model_dump())
        return success(self.status, data=self._shown(result))

    def _shown(self, item: BaseModel) -> Any:
        """`item` as the declared model shows it (which leaves out what clients never see)."""
        return self.data.model_validate(item.model_dump()).model_dump(mode="json")

    async def _body(self, request: Request) -> Any:
        if self.body is None:
            return None
        text = await request.body()
        if nesting_exceeds(text, MAX_NESTING):
            raise invalid("body", f"nests deeper than {MAX_NESTING} levels")
        try:
            raw = json.loads(text, parse_constant=_no_constant)
            # Lone surrogates ("\\ud800") are valid JSON but cannot be stored as UTF-8.
            json.dumps(raw, ensure_ascii=False).encode()
        except (ValueError, UnicodeError):
            raise ApiError(400, "invalid_json", "the request body is not UTF-8 JSON") from None
        try:
            return self.body.model_validate(raw)
        except ValidationError as error:
            raise invalid_input(error, "body") from None

    def _query(self, request: Request) -> BaseModel | None:
        if self.query is None:
            return None
        try:
            return self.query.model_validate(dict(request.query_params))
        except ValidationError as error:
            raise invalid_input(error, "query") from None

    def _listing(self, request: Request) -> ListQuery:
        if self.filters is None:
            return ListQuery()
        params = dict(request.query_params)
        paging_names = set(Paging.model_fields)
        try:
            paging = Paging.model_validate({k: v for k, v in params.items() if k in paging_names})
            rest = {k: v for k, v in params.items() if k not in paging_names}
            filters = self.filters.model_validate(rest)
        except ValidationError as error:
            raise invalid_input(error, "query") from None
        sort = paging.sort or f"-{self.sorts[0]}"
        if sort.removeprefix("-") not in self.sorts:
            raise invalid(
                "query.sort", f"must be one of {', '.join(self.sorts)}, '-' for descending"
            )
        return ListQuery(
            filters=filters.model_dump(exclude_none=True),
            sort=sort.removeprefix("-"),
            descending=sort.startswith("-"),
            limit=paging.limit,
            offset=paging.offset,
        )


def _no_constant(name: str) -> None:
    """NaN and Infinity are not JSON (RFC 8259 §6), though Python's parser takes them."""
    raise ValueError(f"{name} is not a JSON number")


async def authenticate(services: Services, request: Request) -> ApiKey:
    """The live API key of the request's `Authorization: Bearer`; ApiError 401 otherwise."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "unauthorized", "send an API key as `Authorization: Bearer <key>`")
    key = await services.api_keys.live_key(secret.strip())
    if key is None:
        log.warning("API key refused", path=request.url.path)
        raise ApiError(401, "invalid_api_key", "the API key is unknown or revoked")
    return key


def storage_refusal(error: DocumentTooLarge | InvalidDocument | WriteError) -> ApiError:
    """What the database's refusal of a document made from the request tells the client: the
    write failed because of the input, so it is the client's to fix (never a 500)."""
    log.warning("the database refused the request's document", error=type(error).__name__)
    if isinstance(error, DuplicateKeyError):
        return conflict("a document with these values already exists")
    too_large = isinstance(error, DocumentTooLarge) or (
        isinstance(error, WriteError) and error.code in _TOO_LARGE_CODES
    )
    if too_large:
        return ApiError(413, "too_large", "the document would be larger than the database takes")
    return ApiError(422, "not_storable", "the database cannot store this input")
