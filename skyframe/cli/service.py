"""``skyframe serve`` and ``skyframe worker``."""

from __future__ import annotations

import typer

from skyframe.cli import app


@app.command()
def serve(
    host: str = typer.Option(None, help="Address to bind. Default 127.0.0.1 (this machine only)."),
    port: int = typer.Option(None, help="Port. Default 8000."),
) -> None:
    """Start the web app and API (and, with the embedded queue, the enhancement workers)."""
    import uvicorn

    from skyframe.app import create_app
    from skyframe.config import get_settings

    settings = get_settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
