"""The call-log page: plain HTML and JavaScript in `static/`, no build step. It reads the REST
API with the user's key and follows calls through the event streams of `voice_server.api.events`.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def page_routes() -> list[BaseRoute]:
    return [
        Route("/calllog", calllog_page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


async def calllog_page(request: Request) -> Response:
    return FileResponse(STATIC / "calllog.html", headers={"Cache-Control": "no-cache"})
