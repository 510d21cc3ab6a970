"""bench/lmdb_pages.py reads LMDB's data file itself: on environments of generated content, the pages
it gives each tree are as many as LMDB's own statistics count for that tree (branch, leaf and
overflow pages), and the pages a commit wrote are found where the commit wrote them."""

from __future__ import annotations

from pathlib import Path

import lmdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.bench_runs import load_bench_module

lmdb_pages = load_bench_module("lmdb_pages")
NAMES = ("alpha", "beta", "gamma")
# Values from a few bytes to several pages: small ones share leaf pages, large ones get overflow pages.
ENTRIES = st.lists(
    st.tuples(st.sampled_from(NAMES), st.binary(min_size=1, max_size=40), st.integers(0, 12_000)),
    max_size=400,
)


def _stat_pages(stat: dict[str, int]) -> int:
    return stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]


def _open(path: Path) -> tuple[lmdb.Environment, dict[str, lmdb._Database]]:
    env = lmdb.open(str(path), map_size=1 << 30, max_dbs=8, sync=False)
    return env, {name: env.open_db(name.encode()) for name in NAMES}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=ENTRIES, commits=st.integers(1, 4))
def test_every_tree_has_the_pages_lmdb_counts_for_it(tmp_path_factory, entries, commits) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("env")
    env, dbs = _open(path)
    try:
        # Several commits, so that some pages are rewritten and freed ones are reused.
        for part in range(commits):
            with env.begin(write=True) as txn:
                for name, key, size in entries[part::commits]:
                    txn.put(key, key * (size // len(key) + 1), db=dbs[name])
        owners = lmdb_pages.page_owners(path / "data.mdb", env.stat()["psize"])
        with env.begin() as txn:
            expected = {name: _stat_pages(txn.stat(db)) for name, db in dbs.items()}
        expected[lmdb_pages.MAIN] = _stat_pages(env.stat())
        counted = {tree: list(owners.values()).count(tree) for tree in expected}
        assert counted == expected
        assert max(owners) <= env.info()["last_pgno"]
    finally:
        env.close()


def test_a_commit_is_found_in_the_pages_it_wrote(tmp_path: Path) -> None:
    env, dbs = _open(tmp_path)
    try:
        with env.begin(write=True) as txn:
            for i in range(5_000):
                txn.put(i.to_bytes(4, "big"), b"v" * 100, db=dbs["alpha"])
                txn.put(i.to_bytes(4, "big"), b"w" * 100, db=dbs["beta"])
        before = lmdb_pages.page_owners(tmp_path / "data.mdb", env.stat()["psize"])
        with env.begin(write=True) as txn:
            txn.put((2_500).to_bytes(4, "big"), b"x" * 100, db=dbs["alpha"])  # one key in the middle
            depth = txn.stat(dbs["alpha"])["depth"]
        written = lmdb_pages.written_pages(before, lmdb_pages.page_owners(tmp_path / "data.mdb", env.stat()["psize"]))
        # The path from alpha's root to the key's leaf, the main tree's page naming alpha's new root,
        # and the free-page tree's record of what the commit freed; beta and gamma untouched.
        assert depth >= 2
        assert len(written["alpha"]) == depth
        assert len(written[lmdb_pages.MAIN]) == 1
        assert lmdb_pages.FREE in written
        assert "beta" not in written and "gamma" not in written
    finally:
        env.close()


def test_runs_count_consecutive_pages_once() -> None:
    assert lmdb_pages.runs([]) == 0
    assert lmdb_pages.runs([7]) == 1
    assert lmdb_pages.runs([3, 4, 5, 9, 11, 12]) == 3
