"""API tokens: created once, used as Bearer, revoked, and never stored in the clear."""

from __future__ import annotations

import re

import httpx

from tests.auth.conftest import PASSWORD, assert_error, cli, create_user, login
from tests.conftest import ServerProcess


def bearer(server: ServerProcess, token: str) -> httpx.Client:
    """A script: no cookie, no Origin header."""
    return httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {token}"})


def test_token_create_use_list_revoke(auth_server: ServerProcess) -> None:
    create_user(auth_server, "alice")
    create_user(auth_server, "bob")
    alice, bob = login(auth_server, "alice"), login(auth_server, "bob")
    created = alice.post("/api/tokens", json={"name": "nightly batch"})
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    token, token_id = created.json()["token"], created.json()["tokenId"]
    assert re.fullmatch(r"skf_[A-Za-z0-9_-]{40,}", token)

    with bearer(auth_server, token) as script:
        assert script.get("/api/auth/me").json()["username"] == "alice"
        # Bearer requests are exempt from the Origin check: a browser never attaches this header itself.
        init = script.post("/api/uploads/init", json={"filename": "a.mp4", "size": 1000})
        assert init.status_code == 201, init.text
        assert alice.get("/api/uploads").json()["total"] == 1  # the same owner as the session

    listed = alice.get("/api/tokens").json()["tokens"]
    assert [t["tokenId"] for t in listed] == [token_id]
    assert "token" not in listed[0] and listed[0]["prefix"] == token[:8]
    assert listed[0]["lastUsedAt"] is not None

    assert_error(bob.delete(f"/api/tokens/{token_id}"), 404, "token_not_found")  # not bob's
    assert alice.delete(f"/api/tokens/{token_id}").status_code == 204
    with bearer(auth_server, token) as script:
        assert_error(script.get("/api/uploads"), 401, "invalid_token")
    assert alice.get("/api/tokens").json()["tokens"] == []

    # A bogus token never falls back to a session cookie sent alongside it.
    with bearer(auth_server, "skf_" + "A" * 43) as script:
        script.cookies.set("skyframe_session", alice.cookies["skyframe_session"])
        assert_error(script.get("/api/uploads"), 401, "invalid_token")


def test_cli_token_works(auth_server: ServerProcess) -> None:
    create_user(auth_server, "carol")
    out = cli(auth_server, "tokens", "create", "carol", "backup script")
    token = re.search(r"skf_[A-Za-z0-9_-]+", out)[0]  # type: ignore[index]
    with bearer(auth_server, token) as script:
        assert script.get("/api/auth/me").json()["username"] == "carol"
    listing = cli(auth_server, "tokens", "list")
    assert "backup script" in listing and token not in listing
    token_id = re.search(r"tok_[0-9a-f]+", listing)[0]  # type: ignore[index]
    cli(auth_server, "tokens", "revoke", token_id)
    with bearer(auth_server, token) as script:
        assert_error(script.get("/api/uploads"), 401, "invalid_token")


def test_secrets_are_stored_hashed(auth_server: ServerProcess) -> None:
    """Read the SQLite files (WAL included): no token, cookie or password in the clear."""
    create_user(auth_server, "alice")
    alice = login(auth_server, "alice")
    cookie = alice.cookies["skyframe_session"]
    token = alice.post("/api/tokens", json={"name": "script"}).json()["token"]
    with bearer(auth_server, token) as script:
        assert script.get("/api/uploads").status_code == 200

    files = sorted(auth_server.data_dir.glob("skyframe.db*"))
    assert files, list(auth_server.data_dir.iterdir())
    stored = b"".join(path.read_bytes() for path in files)
    assert b"usr_" in stored  # really reading the database
    for secret in (token, token.removeprefix("skf_"), cookie, PASSWORD):
        assert secret.encode() not in stored, f"{secret[:6]}... stored in the clear"
    assert b"$argon2id$" in stored
