"""bench/native_txn_probe.py: with the py-lmdb agl installs, native code finds the ``MDB_txn *`` of a
write transaction and puts through py-lmdb's own LMDB table, and py-lmdb reads the value back in that
transaction and after its commit. Run in a subprocess: a wrong pointer would crash it, not pytest.
If a py-lmdb release moves the pointer or drops the table, this fails and says so."""

from __future__ import annotations

import subprocess
import sys

from support.bench_runs import ROOT


def test_native_code_writes_inside_py_lmdb_transaction() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "native_txn_probe.py")], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("py-lmdb ") and "engine LMDB 0.9." in lines[0], lines
    found = lines[1].removeprefix("MDB_txn * found: txn_id ").split(" = Transaction.id() ")
    assert len(found) == 2 and found[0] == found[1] and int(found[0]) > 0, lines
    assert lines[2] == "native put visible to py-lmdb in its transaction and after the commit", lines
