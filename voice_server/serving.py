"""How uvicorn serves the app, wherever it does (`voice-server serve`, the demo, the tests).

uvicorn's access log is off: `voice_server.access_log` writes one line per request instead, with
no query values in it. Logging is left to `voice_server.log.configure_logging`.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from starlette.types import ASGIApp


def uvicorn_config(app: ASGIApp, **options: Any) -> uvicorn.Config:
    """uvicorn's settings for the app; `options` are the caller's own (host, port, loop, …)."""
    return uvicorn.Config(app, log_config=None, access_log=False, ws="websockets-sansio", **options)
