"""HTML pages and the browser client's static files.

The pages carry no session content: the room page is a shell that the
browser client fills in over the websocket, so nothing clinical ever
appears in a page title, a URL or server-rendered HTML. The secret of a
join link lives in the URL fragment, which never reaches the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from rooms.protocol import document as protocol_document

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
WEB_DIR = ROOT / "client" / "web"
MSGPACK_PACKAGE = ROOT / "node_modules" / "@msgpack" / "msgpack"
# The ES module build of @msgpack/msgpack; its folder name changed across releases.
MSGPACK_DIST_NAMES = ("dist.esm", "dist.es5+esm")

GONE_MESSAGE = "This session does not exist or has ended. Nothing from it was kept."
# Room ids are url-safe tokens; anything else cannot name a room.
MAX_ROOM_ID = 128

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
# Every page carries the protocol document (templates/base.html) for client/web/rules.js.
_environment.globals["protocol"] = protocol_document()


def msgpack_dist_dir() -> Path:
    """The folder of @msgpack/msgpack's ES module build (installed by npm), whose
    index.mjs the browser client imports as /static/vendor/msgpack/index.mjs."""
    for name in MSGPACK_DIST_NAMES:
        candidate = MSGPACK_PACKAGE / name
        if (candidate / "index.mjs").is_file():
            return candidate
    return MSGPACK_PACKAGE / MSGPACK_DIST_NAMES[0]


def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _environment.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


async def start_page(request: Request) -> HTMLResponse:
    return render("start.html")


def _plausible_room_id(room_id: str) -> bool:
    return 0 < len(room_id) <= MAX_ROOM_ID and all(
        ch.isascii() and (ch.isalnum() or ch in "-_") for ch in room_id
    )


async def room_page(request: Request) -> HTMLResponse:
    room_id: str = request.path_params["room_id"]
    exists = _plausible_room_id(room_id) and await request.app.state.store.room_exists(room_id)
    if not exists:
        return render("gone.html", status_code=404, message=GONE_MESSAGE)
    return render("room.html", room_id=room_id)


def page_routes() -> list[BaseRoute]:
    return [
        Route("/", start_page, methods=["GET"], name="start"),
        Route("/r/{room_id}", room_page, methods=["GET"], name="room"),
        # The vendor mount comes first: the /static mount would answer 404 for it.
        Mount(
            "/static/vendor/msgpack",
            app=StaticFiles(directory=msgpack_dist_dir(), check_dir=False),
            name="vendor-msgpack",
        ),
        Mount("/static", app=StaticFiles(directory=WEB_DIR, check_dir=False), name="static"),
    ]
