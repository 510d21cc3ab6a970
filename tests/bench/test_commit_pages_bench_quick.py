"""bench/commit_pages_bench.py with a small store: every group of span batches commits as one group
(the bench checks the writer's count of groups), and the pages each commit wrote are where the
spans go. The counts are read from the data file, so some follow from the store's layout alone."""

from __future__ import annotations

from support.bench_runs import rows_by_name, run_bench, run_bench_failing


def test_commit_pages_bench_quick_counts_each_groups_pages_by_tree() -> None:
    saved = run_bench(
        "commit_pages_bench.py", ["--spans-before", "3000", "--commits", "4"], "commit_pages_bench_smoke_quick", 300
    )
    rows = rows_by_name(saved)
    for size, label in ((1, "1 batch of 10 spans"), (4, "4 batches of 10 spans"), (8, "8 batches of 10 spans")):
        pages = rows[f"pages written per commit, {label}"]["value"]
        runs = rows[f"runs of them (separate writes), {label}"]["value"]
        assert 1 <= runs <= pages
        by_tree = {name.rsplit(", ", 1)[0]: row["value"] for name, row in rows.items() if name.endswith(f", {label}")}
        # Every batch puts chunks and references, appends to its attempt's span-id log and moves the
        # attempt's heartbeat; every commit rewrites the main tree's page naming the trees' new roots.
        for tree in ("span_chunks", "spans", "span_id_log", "attempts"):
            assert by_tree[tree] >= 1, (tree, by_tree)
        assert by_tree["(main)"] == 1
        # A 10-span batch (about 10 KB) needs at least its chunk's pages: more batches, more pages.
        assert by_tree["span_chunks"] >= 3 * size
    assert saved["context"]["commits"] == 4


def test_a_reserve_makes_each_commit_one_run_until_used_up() -> None:
    """The what-if of --reserve-mb: with a contiguous run of free pages, a commit's pages are
    consecutive (the first commits may still use pages freed before it, lower in the file)."""
    saved = run_bench(
        "commit_pages_bench.py",
        ["--spans-before", "3000", "--commits", "4", "--reserve-mb", "32"],
        "commit_pages_bench_reserve_quick",
        300,
    )
    rows = rows_by_name(saved)
    for label in ("4 batches of 10 spans", "8 batches of 10 spans"):
        assert rows[f"runs of them (separate writes), {label}"]["value"] == 1.0
        assert rows[f"pages written per commit, {label}"]["value"] > 1
    assert rows["reserve pages never reached"]["value"] >= 256


def test_a_reserve_the_commits_use_up_fails_the_bench() -> None:
    args = ["--spans-before", "3000", "--commits", "4", "--reserve-mb", "1"]
    stderr = run_bench_failing("commit_pages_bench.py", args, "commit_pages_bench_small_quick", 300)
    assert "pages of the 1 MiB reserve: give more" in stderr, stderr[-2000:]


def test_the_bare_span_operation_writes_only_the_spans() -> None:
    """The what-if of --bare-op (bench/bare_span_op.py, the floor that bounds a native span
    operation): its commits write the spans' tree and the main tree's page, none of the trees agl's
    own operation adds to (chunks, span-id logs, heartbeats)."""
    saved = run_bench(
        "commit_pages_bench.py",
        ["--spans-before", "3000", "--commits", "4", "--bare-op"],
        "commit_pages_bench_bare_quick",
        300,
    )
    assert saved["context"]["bare_op"] is True
    rows = rows_by_name(saved)
    for size, label in ((1, "1 batch of 10 spans"), (8, "8 batches of 10 spans")):
        by_tree = {name.rsplit(", ", 1)[0]: row["value"] for name, row in rows.items() if name.endswith(f", {label}")}
        trees = set(by_tree) - {"pages written per commit", "runs of them (separate writes)"}
        assert trees <= {"spans", "(main)", "(free pages)"}, by_tree
        # Ten spans of about 1 KB each, two or three to a leaf page.
        assert by_tree["spans"] >= 3 * size, by_tree
