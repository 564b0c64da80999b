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
    from skyframe.auth.mode import bind_problem
    from skyframe.config import get_settings

    settings = get_settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    problem = bind_problem(settings)
    if problem:
        typer.secho(f"error: {problem}", err=True, fg="red")
        raise typer.Exit(2)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


@app.command()
def worker(
    parent_pid: int = typer.Option(None, hidden=True, help="Exit when this process is gone (embedded mode)."),
) -> None:
    """Run enhancement workers: take jobs from the queue (Redis for workers on other machines)."""
    import logging

    from skyframe.config import get_settings
    from skyframe.jobs.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_worker(get_settings(), parent_pid=parent_pid)
