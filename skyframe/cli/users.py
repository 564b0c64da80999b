"""``skyframe users ...`` and ``skyframe tokens ...``: accounts and API tokens from the server's machine.

These work on the database directly (same settings as ``skyframe serve``), so they also work while the
service is stopped, and they are how an operator recovers a lost admin password.
"""

from __future__ import annotations

import re

import typer

from skyframe.cli import app
from skyframe.formatting import human_size

users_app = typer.Typer(help="Accounts (SKYFRAME_AUTH=on): create, list, reset passwords, disable.")
tokens_app = typer.Typer(help="API tokens for scripts (sent as 'Authorization: Bearer skf_...').")
app.add_typer(users_app, name="users", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens", no_args_is_help=True)

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

PASSWORD_HELP = "The password. Omit it to be prompted (hidden), which keeps it out of shell history."


def _auth():  # type: ignore[no-untyped-def]
    """The auth service on the configured database (migrations applied, like ``serve``)."""
    from skyframe.config import get_settings
    from skyframe.services import Services

    return Services(get_settings()).auth


def _run(action):  # type: ignore[no-untyped-def]
    """Domain errors become a one-line message and exit status 1, not a traceback."""
    from skyframe.errors import SkyframeError

    try:
        return action()
    except SkyframeError as exc:
        typer.secho(f"error: {exc.message}", err=True, fg="red")
        raise typer.Exit(1) from None


def _password(password: str | None) -> str:
    if password is not None:
        return password
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


def parse_size(text: str) -> int:
    """'50G', '500MiB', '1024' -> bytes (binary units)."""
    match = _SIZE.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not a size like 500M, 50G or 1073741824.")
    unit = (match[2] or "").lower()[:1]
    return int(float(match[1]) * _UNITS[unit])


def _human(size: int | None) -> str:
    return "unlimited" if size is None else human_size(size)


@users_app.command("create")
def create_user(
    name: str = typer.Argument(..., help="Username (letters, digits, '.', '_', '-')."),
    password: str | None = typer.Option(None, "--password", "-p", help=PASSWORD_HELP),
    admin: bool = typer.Option(False, "--admin", help="Role admin: sees and manages everything, no limits."),
) -> None:
    """Create an account."""
    auth = _auth()
    user = _run(lambda: auth.create_user(name, _password(password), admin=admin))
    typer.echo(f"Created {user.role} {user.username} ({user.id}).")


@users_app.command("list")
def list_users() -> None:
    """Accounts with their role, state and limits."""
    auth = _auth()
    users = auth.list_users()
    if not users:
        typer.echo("No accounts yet.")
        return
    typer.echo(f"{'USERNAME':<24} {'ROLE':<6} {'STATE':<9} {'JOBS':>5} {'STORAGE':>12} PAID  ID")
    for user in users:
        limits = auth.limits_for(user)
        jobs = "-" if limits is None or limits.max_concurrent_jobs is None else limits.max_concurrent_jobs
        storage = _human(None if limits is None else limits.max_storage_bytes)
        paid = "yes" if limits is None or limits.allow_paid_models else "no"
        state = "disabled" if user.disabled else "active"
        row = f"{user.username:<24} {user.role:<6} {state:<9} {jobs!s:>5} {storage:>12} {paid:<5}"
        typer.echo(f"{row} {user.id}")


@users_app.command("set-password")
def set_password(
    name: str = typer.Argument(..., help="Username."),
    password: str | None = typer.Option(None, "--password", "-p", help=PASSWORD_HELP),
) -> None:
    """Set a new password; the user's browser sessions end (API tokens stay)."""
    auth = _auth()
    _run(lambda: auth.find_user(name))
    user = _run(lambda: auth.set_password(name, _password(password)))
    typer.echo(f"Password changed for {user.username}; their sessions were ended.")


@users_app.command("disable")
def disable_user(name: str = typer.Argument(..., help="Username.")) -> None:
    """Block an account: no login; its sessions and API tokens stop working at once."""
    user = _run(lambda: _auth().set_disabled(name, True))
    typer.echo(f"Disabled {user.username}.")


@users_app.command("enable")
def enable_user(name: str = typer.Argument(..., help="Username.")) -> None:
    """Unblock a disabled account."""
    user = _run(lambda: _auth().set_disabled(name, False))
    typer.echo(f"Enabled {user.username}.")


@users_app.command("set-limits")
def set_limits(
    name: str = typer.Argument(..., help="Username."),
    max_jobs: int | None = typer.Option(None, "--max-jobs", min=0, help="Jobs waiting or running at once."),
    max_storage: str | None = typer.Option(None, "--max-storage", help="Upload bytes, e.g. 500M, 50G."),
    paid: bool | None = typer.Option(None, "--paid/--no-paid", help="May run Replicate (billed) models."),
    default: bool = typer.Option(False, "--default", help="Put every limit back on the defaults."),
) -> None:
    """Per-user limits (admins have none). Unspecified limits keep their current value."""
    changes: dict[str, object] = {}
    if default:
        changes = {"max_concurrent_jobs": None, "max_storage_bytes": None, "allow_paid_models": None}
    if max_jobs is not None:
        changes["max_concurrent_jobs"] = max_jobs
    if max_storage is not None:
        changes["max_storage_bytes"] = parse_size(max_storage)
    if paid is not None:
        changes["allow_paid_models"] = paid
    auth = _auth()
    user = _run(lambda: auth.set_limits(name, **changes))  # type: ignore[arg-type]
    limits = auth.limits_for(user)
    if limits is None:
        typer.echo(f"{user.username} is an admin: limits are stored but do not apply.")
        return
    typer.echo(
        f"{user.username}: {limits.max_concurrent_jobs} job(s) at once, "
        f"{_human(limits.max_storage_bytes)} of uploads, paid models "
        f"{'allowed' if limits.allow_paid_models else 'not allowed'}."
    )


@tokens_app.command("create")
def create_token(
    user: str = typer.Argument(..., help="Username the token acts as."),
    name: str = typer.Argument(..., help="A label, e.g. the script or machine that uses it."),
) -> None:
    """Create an API token; it is printed once (only its hash is stored)."""
    auth = _auth()
    owner = _run(lambda: auth.find_user(user))
    row, token = _run(lambda: auth.create_token(owner.id, name))
    typer.echo(f"Created token {row.id} ({row.name}) for {owner.username}.")
    typer.echo("Copy it now; it is not shown again:")
    typer.echo(token)


@tokens_app.command("list")
def list_tokens(user: str | None = typer.Argument(None, help="Only this user's tokens.")) -> None:
    """API tokens (never the secrets)."""
    auth = _auth()
    scope = _run(lambda: auth.find_user(user)).id if user else None
    names = {u.id: u.username for u in auth.list_users()}
    rows = auth.list_tokens(scope)
    if not rows:
        typer.echo("No API tokens.")
        return
    for row in rows:
        used = row.last_used_at.isoformat(timespec="seconds") if row.last_used_at else "never used"
        typer.echo(f"{row.id}  {row.prefix}…  {names.get(row.user_id, row.user_id):<20} {row.name}  ({used})")


@tokens_app.command("revoke")
def revoke_token(token_id: str = typer.Argument(..., help="Token id (tok_...), from `tokens list`.")) -> None:
    """Revoke an API token: requests with it answer 401 from now on."""
    _run(lambda: _auth().delete_token(None, token_id))
    typer.echo(f"Revoked {token_id}.")
