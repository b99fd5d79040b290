"""nginx (Debian's package) on loopback in front of some servers, for tests of what a deployment
behind a load balancer does: round robin over the servers, WebSockets passed through."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

READY_S = 15.0
# The README's example, with the test's ports and a folder of the test's own for nginx's files.
CONFIG = """\
worker_processes 1;  # one round robin: consecutive requests go to consecutive servers
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;

    upstream voice_servers {{
{servers}
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ""      close;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://voice_servers;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 3600s;  # the longest quiet between two reads on a connection
            proxy_send_timeout 3600s;
            proxy_buffering off;  # the call log's event streams
        }}
    }}
}}
"""


def nginx_executable() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


@asynccontextmanager
async def nginx_in_front(servers: list[str], port: int, folder: Path) -> AsyncIterator[None]:
    """nginx on loopback `port`, round robin over `servers` (host:port each), for the block;
    its files in `folder`."""
    executable = nginx_executable()
    assert executable is not None
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (a test's folder, at once)
    upstreams = "\n".join(f"        server {server};" for server in servers)
    config = folder / "nginx.conf"
    config.write_text(CONFIG.format(folder=folder, servers=upstreams, port=port))
    process = await asyncio.create_subprocess_exec(
        *(executable, "-p", str(folder), "-c", str(config), "-e", str(folder / "error.log")),
        *("-g", "daemon off;"),
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with asyncio.timeout(READY_S):
            while True:  # nginx offers nothing to wait on but its port answering
                assert process.returncode is None, (folder / "error.log").read_text()
                try:
                    async with httpx.AsyncClient() as http:
                        await http.get(f"{base_url}/health")  # round robin moves on by one
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        yield
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
