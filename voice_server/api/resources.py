"""A resource: the five operations (create, read, list, update, soft-delete) of one collection.

Each resource module states its models and what its store calls are; the reads and the
delete are the same for all, and their 404 is the same whether the id does not exist, is
deleted, or belongs to another user.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from stores.owned import Listing, ListQuery
from voice_server.api.envelope import not_found
from voice_server.api.operations import ApiRequest, Operation
from voice_server.services import Services

Getter = Callable[[Services, str, str], Awaitable[BaseModel | None]]
Pager = Callable[[Services, str, ListQuery], Awaitable[Listing[Any]]]
Deleter = Callable[[Services, str, str], Awaitable[bool]]
Creator = Callable[[ApiRequest], Awaitable[BaseModel]]
Updater = Callable[[ApiRequest], Awaitable[BaseModel | None]]


class Deleted(BaseModel):
    id: str
    deleted: bool


@dataclass(frozen=True)
class Resource:
    path: str  # e.g. "/agents"
    tag: str
    what: str  # e.g. "agent", for messages
    view: type[BaseModel]
    create_body: type[BaseModel]
    update_body: type[BaseModel]
    filters: type[BaseModel]
    sorts: tuple[str, ...]
    create: Creator
    update: Updater  # None when the caller has no such document
    get: Getter
    page: Pager
    delete: Deleter

    def operations(self) -> list[Operation]:
        one, plural = f"{self.path}/{{id}}", f"{self.what}s"
        return [
            Operation("POST", self.path, f"Create a {self.what}", self.tag, self.create,
                      self.view, status=201, body=self.create_body, errors=(400, 409, 422)),
            Operation("GET", self.path, f"List {plural}", self.tag, self._page, self.view,
                      filters=self.filters, sorts=self.sorts, errors=(422,)),
            Operation("GET", one, f"Read a {self.what}", self.tag, self._get, self.view,
                      errors=(404,)),
            Operation("PATCH", one, f"Change a {self.what}", self.tag, self._update,
                      self.view, body=self.update_body, errors=(400, 404, 409, 422)),
            Operation("DELETE", one, f"Delete a {self.what} (soft)", self.tag, self._delete,
                      Deleted, errors=(404,)),
        ]  # fmt: skip

    async def _page(self, request: ApiRequest) -> Listing[Any]:
        return await self.page(request.services, request.user_id, request.listing)

    async def _get(self, request: ApiRequest) -> BaseModel:
        found = await self.get(request.services, request.user_id, request.doc_id)
        if found is None:
            raise not_found(self.what)
        return found

    async def _update(self, request: ApiRequest) -> BaseModel:
        if await self.get(request.services, request.user_id, request.doc_id) is None:
            raise not_found(self.what)
        updated = await self.update(request)
        if updated is None:  # deleted between the two
            raise not_found(self.what)
        return updated

    async def _delete(self, request: ApiRequest) -> BaseModel:
        if not await self.delete(request.services, request.user_id, request.doc_id):
            raise not_found(self.what)
        return Deleted(id=request.doc_id, deleted=True)
