"""The OpenAPI 3.1 description of `/api`, built from the same `Operation`s that make the routes
and from the pydantic models they validate and answer with."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from voice_server.api.envelope import FieldProblem
from voice_server.api.operations import MAX_OFFSET, Operation, Pagination, Paging

REF = "#/components/schemas/{model}"
ERRORS = {
    400: "The body is not JSON",
    401: "No valid API key",
    404: "Nothing with this id for this caller (another user's document included)",
    409: "Conflicts with what is stored",
    422: "Invalid input; `error.details` names each failing field",
    502: "Twilio refused the request or could not be reached",
}


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[FieldProblem]


class ErrorResponse(BaseModel):
    success: bool
    error: ErrorBody


def openapi_document(operations: list[Operation]) -> dict[str, Any]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (ErrorResponse, "serialization"),
        (Pagination, "serialization"),
    ]
    for op in operations:
        wanted.append((op.data, "serialization"))
        if op.body is not None:
            wanted.append((op.body, "validation"))
    refs, definitions = models_json_schema(wanted, ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(f"/api{op.path}", {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "voice-server API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }


def _operation(op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    data = refs[(op.data, "serialization")]
    envelope: dict[str, Any] = {"success": {"const": True}}
    if op.many:
        envelope |= {"data": {"type": "array", "items": data}}
        envelope["pagination"] = refs[(Pagination, "serialization")]
    else:
        envelope["data"] = data
    answer = {"type": "object", "required": list(envelope), "properties": envelope}
    responses: dict[str, Any] = {
        str(op.status): {"description": "Done", "content": _json(answer)},
    }
    for status in sorted({401, *op.errors}):
        error = refs[(ErrorResponse, "serialization")]
        responses[str(status)] = {"description": ERRORS[status], "content": _json(error)}
    entry: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": f"{op.method.lower()}{op.path.replace('/', '_').replace('{id}', 'one')}",
        "parameters": _parameters(op),
        "responses": responses,
    }
    if op.body is not None:
        body = refs[(op.body, "validation")]
        entry["requestBody"] = {"required": True, "content": _json(body)}
    return entry


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    if "{id}" in op.path:
        path = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
        query = {} if op.query is None else op.query.model_json_schema()["properties"]
        return path + [_query(name, schema) for name, schema in query.items()]
    if op.filters is None:
        return []
    sorts = [order + name for name in op.sorts for order in ("", "-")]
    paging = Paging.model_fields
    params = [
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 100,
                         "default": paging["limit"].default}),
        _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}),
        _query("sort", {"type": "string", "enum": sorts, "default": f"-{op.sorts[0]}"}),
    ]  # fmt: skip
    properties = op.filters.model_json_schema()["properties"]
    return params + [_query(name, _not_null(schema)) for name, schema in properties.items()]


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional filter's schema without its `null` branch (a query has no null)."""
    branches = [branch for branch in schema.get("anyOf", []) if branch.get("type") != "null"]
    if len(branches) == 1:
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        return {**rest, **branches[0]}
    return schema
