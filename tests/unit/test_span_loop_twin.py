"""The compiled span loop (``span_loop.pyx``) against its Python reference (``span_write.ingest``).

Copies of one store, running each loop, take the same generated batches, each loop given the
spans' headers parsed or (as agl-server gives them, from the request's bytes) read by
``validation.batch_span_places``; against the Python loop given parsed headers, the answers
(accepted, duplicates, rejected with their codes and messages) and every byte of the span
sub-databases (spans, chunks, span-id logs, sequence counters, resources) must be the same. Batches
mix known and unknown attempts, resent and repeated ids, store-assigned and client-set sequence
ids, spans stored whole and in chunks, spans with an OTLP resource; a small filter budget makes
the store evict and rebuild filters (exact checks), and long runs of ids make filters grow.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agl_core import LmdbStore
from agl_core.proto import trace_pb2 as tr
from agl_core.store.lmdb import span_path
from agl_core.store.lmdb.span_ids import MIN_BITS
from agl_core.store.wire import IngestSpansRequestView

# The sub-databases the span loop writes; the others hold heartbeat times, which differ by run.
SPAN_DATABASES = (b"spans", b"span_chunks", b"span_id_log", b"span_seqs", b"span_resources")
ROLLOUTS = 3
INDEX_COUNTERS = ("rebuilds", "grows", "filled", "exact_checks", "appends", "filters")

needs_compiled = pytest.mark.skipif(
    shutil.which("cc") is None and not span_path.compiled_available(),
    reason="no C compiler here, so pip install built no compiled span loop to compare",
)


def test_the_compiled_loop_is_built_where_a_compiler_is() -> None:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler on PATH: the install goes on without the compiled loop")
    assert span_path.compiled_available(), "pip install -e . should have built agl_core/store/lmdb/span_loop"
    # An editable install builds it in place; a failed rebuild (the extension is optional) would
    # leave the last one, and these tests would compare the Python loop with old code.
    from agl_core.store.lmdb import span_loop  # type: ignore[attr-defined]

    source = Path(span_path.__file__).with_name("span_loop.pyx")
    if source.exists() and Path(span_loop.__file__).parent == source.parent:
        assert Path(span_loop.__file__).stat().st_mtime >= source.stat().st_mtime, (
            f"{span_loop.__file__} is older than {source}: run pip install -e . (make setup) again"
        )
    assert span_path.choose()[0] == "compiled"
    assert span_path.choose("python")[0] == "python"


def test_an_unknown_loop_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="span_loop='fast': give 'compiled' or 'python'"):
        span_path.choose("fast")


@pytest.fixture(scope="module")
def template() -> Path:
    """A store with ``ROLLOUTS`` running rollouts, copied afresh for each example."""
    root = Path(tempfile.mkdtemp(prefix="agl-twin-"))

    async def make() -> list[tuple[str, str]]:
        store = LmdbStore(root / "store", sync=False)
        try:
            started = [await store.start_rollout({"n": n}) for n in range(ROLLOUTS)]
            return [(r.rollout_id, r.attempt.attempt_id) for r in started]  # type: ignore[union-attr]
        finally:
            await store.close()

    coords = asyncio.run(make())
    (root / "coords").write_text("\n".join(f"{r} {a}" for r, a in coords))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _coords(template: Path) -> list[tuple[str, str]]:
    coords = [tuple(line.split()) for line in (template / "coords").read_text().splitlines()]
    # "latest" for a known rollout (the same attempt as coords[0] under another name), an unknown
    # rollout, and a known rollout with an unknown attempt: the last two rejected as NOT_FOUND.
    named = [(coords[0][0], "latest"), ("no-such-rollout", "a"), (coords[0][0], "no-such-attempt")]
    return [*coords, *named]  # type: ignore[list-item]


span_ids = st.one_of(
    st.sampled_from([b"\x01" * 8, b"\x02" * 8, b"abc", b"\x00" * 16, b"\x00"]),  # resent often
    st.binary(min_size=1, max_size=16),
)
span_specs = st.tuples(
    st.integers(0, ROLLOUTS + 2),  # which coords
    span_ids,
    st.one_of(st.just(0), st.integers(1, 40), st.integers(1, 2**53 - 1)),  # 0: the store assigns
    st.sampled_from([0, 50, 900, 5000]),  # payload: whole (<= 700 bytes) or in a chunk
    st.booleans(),  # an OTLP resource
)
batches = st.lists(st.lists(span_specs, min_size=1, max_size=12), min_size=1, max_size=6)


def _span(coords: tuple[str, str], span_id: bytes, sequence_id: int, payload: int, resource: bool) -> bytes:
    span = tr.Span(
        trace_id=b"\x07" * 16,
        span_id=span_id,
        name="llm.call",
        rollout_id=coords[0],
        attempt_id=coords[1],
        sequence_id=sequence_id,
    )
    if payload:
        span.attributes.add(key="blob", value=tr.AnyValue(string_value="x" * payload))
    if resource:
        span.resource.attributes.add(key="service.name", value=tr.AnyValue(string_value="twin"))
    return span.SerializeToString()


def _contents(path: Path) -> dict[bytes, list[tuple[bytes, bytes]]]:
    env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=32, subdir=True)
    try:
        out = {}
        with env.begin() as txn:
            for name in SPAN_DATABASES:
                out[name] = list(txn.cursor(db=env.open_db(name, txn=txn, create=False)))
        return out
    finally:
        env.close()


def _run_twins(template: Path, work: Path, raw_batches: list[list[bytes]], budget: int) -> dict[str, int]:
    """Feed both loops; returns the span-id index's counters (the same for both)."""

    async def feed(loop: str, whole: bool) -> tuple[list[bytes], dict[str, int]]:
        path = work / f"{loop}-{whole}"
        shutil.copytree(template / "store", path)
        store = LmdbStore(path, sync=False, span_loop=loop, span_id_filter_budget=budget)
        assert store.backend.span_loop == loop
        try:
            answers = []
            for raws in raw_batches:
                # With the request's bytes (as agl-server passes them) the spans' places are read from
                # them in C (validation.batch_span_places); without, from the parsed headers.
                request = IngestSpansRequestView(spans=raws).SerializeToString() if whole else None
                answers.append((await store.backend.ingest_span_bytes(raws, request)).SerializeToString())
            index = store.backend._span_ids
            return answers, {name: getattr(index, name) for name in INDEX_COUNTERS}
        finally:
            await store.close()

    python = asyncio.run(feed("python", False))
    for loop, whole in (("compiled", False), ("compiled", True), ("python", True)):
        assert asyncio.run(feed(loop, whole)) == python, (loop, whole)
        assert _contents(work / f"{loop}-{whole}") == _contents(work / "python-False"), (loop, whole)
    return python[1]


@needs_compiled
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=batches, budget=st.sampled_from([32 << 20, 600]))
def test_generated_batches_give_the_same_answers_and_bytes(template: Path, specs, budget: int) -> None:  # type: ignore[no-untyped-def]
    coords = _coords(template)
    raw_batches = [[_span(coords[c], *rest) for c, *rest in batch] for batch in specs]
    with tempfile.TemporaryDirectory(prefix="agl-twin-") as work:
        _run_twins(template, Path(work), raw_batches, budget)


@needs_compiled
@pytest.mark.parametrize("budget", [32 << 20, 600])
def test_growing_and_evicted_filters_agree(template: Path, tmp_path: Path, budget: int) -> None:
    """Thousands of ids per attempt: filters outgrow their size (their successors filled a few
    chunks per write while new ids keep coming), or with a small budget are evicted and rebuilt
    at each write. Every batch also resends five ids its attempt took in its previous batch, and at
    the end every id is sent again: ids written while a filter grew must be found by the filter
    that took over, which they reached only through the successor's own bits."""
    coords = _coords(template)[:ROLLOUTS]
    per_batch, writes = 30, 150  # 1,500 ids an attempt: each filter grows past 256 ids

    def span_id(n: int, k: int) -> bytes:
        return (n * per_batch + k).to_bytes(8, "big")

    raw_batches = []
    for n in range(writes):
        ids = [span_id(n, k) for k in range(per_batch)]
        resent = [span_id(n - ROLLOUTS, k) for k in range(5)] if n >= ROLLOUTS else []
        batch = [_span(coords[n % ROLLOUTS], i, 0, 900 if k % 2 else 0, False) for k, i in enumerate(ids + resent)]
        raw_batches.append(batch)
    for n in range(0, writes, 2):
        again = [_span(coords[m % ROLLOUTS], span_id(m, k), 0, 0, False) for m in (n, n + 1) for k in range(per_batch)]
        raw_batches.append(again)
    counters = _run_twins(template, tmp_path, raw_batches, budget)
    assert counters["exact_checks"] >= (writes - ROLLOUTS) * 5 + writes * per_batch  # each resent id
    if budget >= MIN_BITS // 4:
        assert counters["grows"] == ROLLOUTS and counters["filled"] > 0
    else:
        assert counters["rebuilds"] > writes  # room for one filter: each write rebuilds its attempt's
