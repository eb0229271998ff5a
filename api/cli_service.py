"""What `custody serve` and `custody token create` do, as plain functions (the CLI wires them up).

Both take ``Settings`` (read once by the CLI) and raise ``CustodyError`` subclasses, which the
CLI's ``main`` maps to exit codes as for every other command.
"""

from __future__ import annotations

from typing import Any

from api.settings import Settings


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the HTTP API with uvicorn (one worker: the ledger writer groups commits in-process).

    The app is built first, so a ledger that is not initialised (or not migrated to the token
    table) fails here with its usual error instead of inside the server.
    """
    import uvicorn

    from api.app import ApiSettings, create_app

    app = create_app(settings, ApiSettings.from_env())
    uvicorn.run(app, host=host, port=port, **uvicorn_options())


def uvicorn_options() -> dict[str, Any]:
    """How ``serve`` runs uvicorn (bench/noop_app.py serves its no-op peer the same way).

    ``CUSTODY_API_LOOP`` / ``CUSTODY_API_HTTP`` (default ``auto``: uvloop and httptools when
    installed, as ``uvicorn[standard]`` installs them) choose the event loop and HTTP parser."""
    import os

    return {"log_level": "info", "proxy_headers": False, "server_header": False,
            "loop": os.environ.get("CUSTODY_API_LOOP", "auto"), "http": os.environ.get("CUSTODY_API_HTTP", "auto")}


def create_token(settings: Settings, role: str, name: str) -> str:
    """Issue an API token with ``role`` for ``name``; returns the token (shown once, stored hashed).

    Also runs the ledger's migrations first (idempotent), so a ledger created before the token
    table existed gets it; the ledger must have been initialised (`custody init`).
    """
    from api.composition import open_ledger
    from api.tokens import TokenStore

    ledger = open_ledger(settings)
    try:
        ledger.store.migrate()
        token, _info = TokenStore(ledger.store).create(role, name)
    finally:
        ledger.store.close()
    return token
