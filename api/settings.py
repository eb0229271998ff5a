"""Settings, read once from the environment (``CUSTODY_*``) and CLI options, passed down as values."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from ledger.errors import InvalidInput
from ledger.records import DEFAULT_MAX_RECORD_BYTES


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    key_dir: Path
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    checkpoint_interval: float = 0.0

    @classmethod
    def from_env(cls, data_dir: Path | None = None, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        d = Path(data_dir or env.get("CUSTODY_DATA_DIR") or "custody-data").resolve()
        url = env.get("CUSTODY_DATABASE_URL") or f"sqlite:///{d / 'ledger.db'}"
        keys = Path(env.get("CUSTODY_KEY_DIR") or d / "keys").resolve()
        try:
            max_bytes = int(env.get("CUSTODY_MAX_RECORD_BYTES", DEFAULT_MAX_RECORD_BYTES))
            interval = float(env.get("CUSTODY_CHECKPOINT_INTERVAL", 0))
        except ValueError as err:
            raise InvalidInput(f"bad CUSTODY_* setting: {err}") from None
        if max_bytes < 1024:
            raise InvalidInput("CUSTODY_MAX_RECORD_BYTES must be at least 1024")
        return cls(d, url, keys, max_bytes, interval)

    def with_data_dir(self, data_dir: Path) -> Settings:
        return replace(self, data_dir=data_dir)
