"""The composition root: turn settings into a working ledger (store + keys + service)."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from api.settings import Settings
from ledger.errors import Conflict, NotInitialised
from ledger.keyring import Keyring
from ledger.service import Ledger, LedgerConfig
from ledger.store_sql import SqlStore

if TYPE_CHECKING:  # the gateway pulls in the pipeline (numpy, OpenCV, NudeNet): only where it is used
    from api.gateway import Gateway

ORIGIN_KEY = "origin"


def default_origin() -> str:
    host = "".join(c for c in socket.gethostname().lower() if c.isalnum() or c in "-.") or "localhost"
    return f"custody.{host}/{secrets.token_hex(4)}"


def init_ledger(settings: Settings, origin: str | None = None) -> Ledger:
    """Create (or migrate) the database, create the keys and record the log's origin. Idempotent
    for an existing ledger with its keys; refuses to pair a database with another ledger's keys."""
    from api.gateway import load_watermark_key

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = SqlStore(settings.database_url)
    store.migrate()
    with store.read() as r:
        meta = r.meta()
    if ORIGIN_KEY in meta:
        if origin and origin != meta[ORIGIN_KEY]:
            raise Conflict(f"this ledger already exists with origin {meta[ORIGIN_KEY]!r}")
        keyring = Keyring(settings.key_dir)
        if keyring.active.name != meta[ORIGIN_KEY]:
            raise Conflict(f"the keys in {settings.key_dir} belong to {keyring.active.name!r}, "
                           f"not to this ledger ({meta[ORIGIN_KEY]!r})")
        load_watermark_key(settings.key_dir, create=True)  # ledgers made before the gateway existed
        return open_ledger(settings, store)
    origin = origin or default_origin()
    Keyring.create(settings.key_dir, origin)
    if not (settings.key_dir / "c2pa").exists():  # Content Credentials signing chain (pipeline marking)
        from pipeline.credentials import create_signing_chain

        create_signing_chain(settings.key_dir / "c2pa", origin)
    load_watermark_key(settings.key_dir, create=True)  # the invisible watermark's secret key
    with store.write() as w:
        w.set_meta(ORIGIN_KEY, origin)
    ledger = open_ledger(settings, store)
    ledger.publish()  # the empty tree's checkpoint: every later one can be proven consistent with it
    return ledger


def open_ledger(settings: Settings, store: SqlStore | None = None) -> Ledger:
    if store is None:
        url = make_url(settings.database_url)
        if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
            raise NotInitialised(f"no ledger at {url.database} (run `custody init`)")
        store = SqlStore(settings.database_url)
    with store.read() as r:
        meta = r.meta()
    if ORIGIN_KEY not in meta:
        raise NotInitialised("this ledger has not been initialised (run `custody init`)")
    keyring = Keyring(settings.key_dir)
    config = LedgerConfig(origin=meta[ORIGIN_KEY], max_record_bytes=settings.max_record_bytes,
                          checkpoint_interval=settings.checkpoint_interval)
    return Ledger(store, keyring, config)


def open_gateway(settings: Settings, ledger: Ledger) -> Gateway:
    """The generation gateway over ``ledger``: evidence store in the data folder, the watermark key and
    the C2PA signing chain from the key folder (both made by ``init``)."""
    from api.gateway import Gateway, load_watermark_key
    from ledger.artifacts import artifact_store_for

    return Gateway(ledger, artifact_store_for(settings.data_dir), watermark_key=load_watermark_key(settings.key_dir),
                   c2pa_dir=settings.key_dir / "c2pa")
