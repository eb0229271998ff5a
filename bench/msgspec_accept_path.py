"""Would msgspec on ``Ledger.append``'s accept path save >= 3 µs per record? (issue 2, session 6)

Not a test. Today ``ledger.records.validate`` makes one pydantic-core call per record (per-kind models
tagged by ``kind``) and returns a pydantic ``Record``; the rest of the ledger reads that ``Record``. This
script times the same benchmark records (``bench_ledger.make_records``) three ways, with the cyclic GC
paused as ``Ledger.append`` ships (``ledger.service.gc_paused``):

* ``pydantic``: the ledger as it is;
* ``msgspec/record``: ``validate`` replaced by one ``msgspec.convert`` per record into tagged per-kind
  ``msgspec.Struct``s (the pydantic models' fields, types and constraints, derived from them), then a
  ``Record`` built without validation (``object.__new__`` and its four slots, the cheapest way), then the
  same rules and canonical-body step as today; any msgspec refusal falls back to the ledger's own path;
* ``msgspec/batch``: ``Ledger._validate`` replaced by one ``msgspec.convert`` of the whole batch, the same
  ``Record`` build, rules, canonical body and batch checks.

It prints (1) the validation stage alone, per record, for 20,000 records in batches of 1,000, best and
median of ``--repeat``: the pydantic call, the msgspec call (per record and per batch), the ``Record``
build, and each whole accept path; (2) durable ``Ledger.append`` (SQLite WAL + FULL, ``publish=True``,
100,000 records in batches of 1,000) for each variant, interleaved with pymerkle's ``append_entries`` on
the same records, median of ``--repeat`` (records/s and the ratio to pymerkle)::

    python bench/msgspec_accept_path.py [--repeat 5] [--records 100000] [--batch 1000]

The msgspec validator here is a measuring device, not a reviewed replacement: it counts how many records
fell back (0 for this mix) so that the timing is of the msgspec path.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Optional, Union

sys.path.insert(0, str(Path(__file__).resolve().parent))

import annotated_types as at
import msgspec
from bench_ledger import custody_batch_rate, make_records, pymerkle_batch_rate, sqlite_ledger
from pydantic import StringConstraints

import ledger.records as R
from ledger import service
from ledger.errors import Conflict, InvalidInput

# --- the msgspec schema, derived from the pydantic models -------------------------------------


def _anchored(pattern: str) -> str:
    # msgspec applies a pattern with re.search; Python's "$" also matches before a final "\n",
    # pydantic's Rust regex does not: "\Z" is the same anchor as pydantic's "$".
    return pattern.removesuffix("$") + r"\Z"


def _mtype(ann: Any, meta: Sequence[Any] = ()) -> Any:
    origin = typing.get_origin(ann)
    if origin is Annotated:
        base, *more = typing.get_args(ann)
        return _mtype(base, [*meta, *more])
    if origin in (Union, types.UnionType):
        # pydantic applies a field's constraints (``int | None = Field(ge=0)``) to the non-None member
        return Union[tuple(a if a is type(None) else _mtype(a, meta) for a in typing.get_args(ann))]  # noqa: UP007
    kw: dict[str, Any] = {}
    for m in meta:
        if isinstance(m, StringConstraints):
            kw.update({k: v for k, v in (("min_length", m.min_length), ("max_length", m.max_length)) if v is not None})
            if m.pattern is not None:
                kw["pattern"] = _anchored(m.pattern)
        elif isinstance(m, at.Ge):
            kw["ge"] = m.ge
        elif isinstance(m, at.Le):
            kw["le"] = m.le
        elif isinstance(m, at.MaxLen):
            kw["max_length"] = m.max_length
        else:
            raise TypeError(f"no msgspec form for {m!r}")
    return Annotated[ann, msgspec.Meta(**kw)] if kw else ann


_Name = _mtype(R.Name)
_Time = Annotated[str, msgspec.Meta(pattern=_anchored(R.TIMESTAMP_PATTERN))]
_Index = Optional[Annotated[int, msgspec.Meta(ge=0)]]  # noqa: UP045


class _Link(msgspec.Struct, forbid_unknown_fields=True):
    rel: _Name
    id: _Index = None
    batch: _Index = None


def _body_struct(kind: R.Kind) -> type:
    fields = [(n, _mtype(f.annotation, f.metadata)) if f.is_required() else (n, _mtype(f.annotation, f.metadata), None)
              for n, f in R.BODIES[kind].model_fields.items()]
    return msgspec.defstruct(f"_{kind.value}_body", fields, forbid_unknown_fields=False)


def _record_struct(kind: R.Kind) -> type:
    return msgspec.defstruct(f"_{kind.value}", [
        ("producer", _Name), ("produced_at", _Time), ("body", _body_struct(kind)),
        ("schema", Annotated[int, msgspec.Meta(ge=R.SCHEMA_VERSION, le=R.SCHEMA_VERSION)], R.SCHEMA_VERSION),
        ("subject", Optional[_Name], None),  # noqa: UP045
        ("links", Annotated[list[_Link], msgspec.Meta(max_length=1000)], []),
        ("sensitive", Optional[dict[str, Any]], None),  # noqa: UP045
        ("idempotency_key", Optional[Annotated[str, msgspec.Meta(min_length=1, max_length=200)]], None),  # noqa: UP045
    ], tag_field="kind", tag=kind.value, forbid_unknown_fields=True)


_STRUCTS = {k: _record_struct(k) for k in R.Kind}
_KIND = {s: k for k, s in _STRUCTS.items()}
_MODEL = {s: R._RECORD_MODELS[k] for k, s in _STRUCTS.items()}
_CLIENT = Union[tuple(_STRUCTS[k] for k in R.Kind if k not in R.LEDGER_ONLY)]  # noqa: UP007
_ALL = Union[tuple(_STRUCTS.values())]  # noqa: UP007
_CLIENT_LIST = list[_CLIENT]  # type: ignore[valid-type]
_ALL_LIST = list[_ALL]  # type: ignore[valid-type]


class _OneClient(msgspec.Struct):  # a Struct caches its type information; a bare Union is rebuilt per call
    r: _CLIENT  # type: ignore[valid-type]


class _OneAll(msgspec.Struct):
    r: _ALL  # type: ignore[valid-type]


_new = object.__new__
_set = object.__setattr__
_FIELDS_SET = frozenset({"kind", "producer", "produced_at", "body"})
FALLBACKS = [0]


def _build(m: Any, data: dict[str, Any]) -> R.Record:
    """A ``Record`` from a converted struct, without a second validation (the cheapest construction)."""
    t = type(m)
    rec = _new(_MODEL[t])
    links = [R.LinkIn.model_construct(rel=ln.rel, id=ln.id, batch=ln.batch) for ln in m.links] if m.links else []
    sens = m.sensitive
    _set(rec, "__dict__", {"kind": _KIND[t], "schema_": m.schema, "producer": m.producer,
                           "produced_at": m.produced_at, "subject": m.subject, "links": links,
                           "body": dict(data["body"]), "sensitive": dict(sens) if sens is not None else None,
                           "idempotency_key": m.idempotency_key})
    _set(rec, "__pydantic_fields_set__", set(_FIELDS_SET))
    _set(rec, "__pydantic_extra__", None)
    _set(rec, "__pydantic_private__", None)
    return rec


def _finish(rec: R.Record) -> tuple[R.Record, bool | bytes]:
    if rec.idempotency_key is not None or rec.sensitive or rec.kind in R._SPECIAL_KINDS:
        R._rules(rec)
    return rec, R._canonical_body(rec.body)


_shipped_validate = R.validate


def validate_msgspec(data: Any, *, allow_ledger_kinds: bool = False) -> tuple[R.Record, bool | bytes]:
    try:
        m = msgspec.convert({"r": data}, _OneAll if allow_ledger_kinds else _OneClient).r
    except msgspec.ValidationError:
        FALLBACKS[0] += 1
        return _shipped_validate(data, allow_ledger_kinds=allow_ledger_kinds)
    return _finish(_build(m, data))


_shipped_batch = service.Ledger._validate


def batch_validate_msgspec(self: service.Ledger, items: Sequence[Any], ledger_kinds: bool) -> list[Any]:
    if not items or len(items) > self.config.max_batch:
        return _shipped_batch(self, items, ledger_kinds)
    try:
        ms = msgspec.convert(items, _ALL_LIST if ledger_kinds else _CLIENT_LIST)
    except msgspec.ValidationError:
        FALLBACKS[0] += len(items)
        return _shipped_batch(self, items, ledger_kinds)
    recs = []
    keys: set[str] = set()
    for pos, (m, item) in enumerate(zip(ms, items, strict=True)):
        try:
            rec, fast = _finish(_build(m, item))
            for link in rec.links:
                if link.batch is not None and link.batch >= pos:
                    raise service.UnknownLink(f"links: 'batch' {link.batch} must name an earlier record of this batch")
            if rec.idempotency_key is not None:
                if rec.idempotency_key in keys:
                    raise Conflict(f"idempotency key {rec.idempotency_key!r} is used twice in one batch")
                keys.add(rec.idempotency_key)
        except (InvalidInput, Conflict) as err:
            raise type(err)(f"record {pos}: {err}" if len(items) > 1 else str(err)) from None
        recs.append((rec, fast))
    return recs


# --- timing ------------------------------------------------------------------------------------


def _timed(fn: Callable[[], Any], n: int, repeat: int) -> tuple[float, float]:
    """Best and median µs per record, the GC paused as in ``Ledger.append``."""
    xs = []
    for _ in range(repeat):
        gc.collect()
        with service.gc_paused(service.GC_PAUSE_MIN_BATCH):
            t = time.perf_counter()
            fn()
            xs.append(time.perf_counter() - t)
    return min(xs) / n * 1e6, statistics.median(xs) / n * 1e6


def stage(repeat: int) -> None:
    n, bs = 20_000, 1000
    recs = make_records(0, n)
    chunks = [recs[k:k + bs] for k in range(0, n, bs)]
    call = R._CLIENT_RECORDS.validate_python
    conv = msgspec.convert
    structs = [conv({"r": d}, _OneClient).r for d in recs]
    rows = {
        "pydantic: TypeAdapter.validate_python (the call alone)": lambda: [call(d) for d in recs],
        "msgspec: convert per record (the call alone)": lambda: [conv({"r": d}, _OneClient) for d in recs],
        "msgspec: convert per batch of 1,000 (the call alone)": lambda: [conv(c, _CLIENT_LIST) for c in chunks],
        "msgspec: Record built from converted structs (no call)": lambda: [_build(m, d) for m, d in zip(structs, recs, strict=True)],
        "accept path: records.validate as shipped (pydantic)": lambda: [R.validate(d) for d in recs],
        "accept path: msgspec per record + Record + rules + canonical body": lambda: [validate_msgspec(d) for d in recs],
    }
    print(f"validation alone, 20,000 records, GC paused, best / median of {repeat} (µs per record); "
          f"load {os.getloadavg()[0]:.2f}")
    FALLBACKS[0] = 0
    for name, fn in rows.items():
        best, mid = _timed(fn, n, repeat)
        print(f"  {name:68} {best:5.2f} / {mid:5.2f}")
    assert FALLBACKS[0] == 0, FALLBACKS


def append_rate(records: int, batch: int, variant: str) -> float:
    led = sqlite_ledger(Path(tempfile.mkdtemp()) / "c", origin="msgspec.bench.example/1")
    patches = {"msgspec/record": (service, "validate", validate_msgspec),
               "msgspec/batch": (service.Ledger, "_validate", batch_validate_msgspec)}
    target = patches.get(variant)
    saved = getattr(target[0], target[1]) if target else None
    if target:
        setattr(target[0], target[1], target[2])
    try:
        rate = custody_batch_rate(led, records, batch)
    finally:
        if target:
            setattr(target[0], target[1], saved)
    led.store.close()
    return rate


def appends(records: int, batch: int, repeat: int) -> None:
    names = ["pydantic", "msgspec/record", "msgspec/batch", "pymerkle"]
    runs: dict[str, list[float]] = {k: [] for k in names}
    loads = []
    FALLBACKS[0] = 0
    for rep in range(repeat):
        order = names if rep % 2 == 0 else names[::-1]  # alternate the order between repeats
        for name in order:
            gc.collect()
            loads.append(os.getloadavg()[0])
            runs[name].append(pymerkle_batch_rate(records, batch) if name == "pymerkle" else append_rate(records, batch, name))
    assert FALLBACKS[0] == 0, FALLBACKS
    pm = statistics.median(runs["pymerkle"])
    print(f"durable Ledger.append, {records:,} records in batches of {batch:,}, publish=True, median of {repeat} "
          f"(load {min(loads):.2f}-{max(loads):.2f})")
    for name in names:
        mid = statistics.median(runs[name])
        print(f"  {name:16} {mid:9,.0f}/s  {1e6 / mid:5.2f} µs  ({mid / pm:.2f}× pymerkle)  runs: "
              + ", ".join(f"{x:,.0f}" for x in runs[name]))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1_000)
    ap.add_argument("--part", choices=["stage", "append", "both"], default="both")
    a = ap.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, msgspec {msgspec.__version__}")
    if a.part in ("stage", "both"):
        stage(a.repeat)
    if a.part in ("append", "both"):
        appends(a.records, a.batch, a.repeat)


if __name__ == "__main__":
    main()
