"""The no-op peer for bench/bench_http.py: one FastAPI POST endpoint that reads and JSON-parses
the body and answers a small JSON list, served by uvicorn exactly as ``custody serve`` serves the
API (same options, from ``api.cli_service.uvicorn_options``).

    python bench/noop_app.py PORT
"""

from __future__ import annotations

import json
import sys
from typing import Any

from fastapi import FastAPI, Request

app = FastAPI(title="no-op peer")


@app.post("/noop", status_code=201)
async def noop(request: Request) -> list[dict[str, Any]]:
    value = json.loads(await request.body())
    n = len(value) if isinstance(value, list) else 1
    return [{"ok": True, "n": n}]


def main() -> None:
    import uvicorn

    from api.cli_service import uvicorn_options

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), **uvicorn_options())


if __name__ == "__main__":
    main()
