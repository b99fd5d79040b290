"""The demo's log goes to a file, formatted as on stderr, so the terminal keeps the conversation."""

from __future__ import annotations

import logging
from pathlib import Path

import structlog

from voice_server.log import send_logs_to


def test_log_lines_go_to_the_file_instead_of_stderr(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = root.handlers[:]
    try:
        send_logs_to(tmp_path / "demo.log")
        structlog.get_logger("demo").info("a line for the file", call_sid="CA1")
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = before

    written = (tmp_path / "demo.log").read_text()
    assert "a line for the file" in written
    assert "call_sid=CA1" in written, "formatted as the other lines were"
    assert root.handlers == before
