"""The explorer page: static files of `services.web`, served by the API itself (no build step, no CDN)."""

from __future__ import annotations

import mimetypes
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)
STATIC_DIR = Path(str(files("services.web") / "static"))
# only the files shipped with the package are served (no path from the request reaches the filesystem)
STATIC_FILES = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
# the page's own files only (no inline script or style; posters come from the TMDB image host, any https
# host a mirror may use), and never inside a frame
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: https:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
GET_OR_HEAD = ["GET", "HEAD"]


def _static(name: str) -> FileResponse:
    path = STATIC_FILES.get(name)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no static file {name!r}")
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if media_type.startswith("text/") or media_type in ("application/javascript", "text/javascript"):
        media_type += "; charset=utf-8"
    return FileResponse(path, media_type=media_type, headers=HEADERS)


@router.api_route("/", methods=GET_OR_HEAD)
def index() -> FileResponse:
    """The explorer: search, movie pages, ratings."""
    return _static("index.html")


@router.api_route("/evaluation", methods=GET_OR_HEAD)
def evaluation() -> FileResponse:
    """The evaluation view (the same page; its script picks the view from the path)."""
    return _static("index.html")


@router.api_route("/static/{name}", methods=GET_OR_HEAD)
def static(name: str) -> FileResponse:
    """A file of the page (html, css, js)."""
    return _static(name)
