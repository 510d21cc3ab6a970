"""Can native code write inside py-lmdb's own write transaction? A feasibility probe for a native
span operation (issue 16, docs/span-acks.md: the writer's span work is what remains once the edge is
native).

Why it is a question: LMDB forbids opening one environment twice in a process, so a native span
operation in agl-server cannot open the store itself; it has to write inside the transaction the
store's writer opened through py-lmdb, with py-lmdb's own copy of LMDB.

What it checks, with ctypes only:

1. py-lmdb exports its LMDB entry points as a table (``lmdb_api_v09``, py-lmdb 3's ``MdbApi``: the
   engine's version, then env, transaction, database and cursor functions in a fixed order);
2. the ``MDB_txn *`` of a ``lmdb.Transaction`` is found among the object's first words after its
   ``Environment`` reference, recognised by ``txn_id`` giving ``Transaction.id()`` (its offset
   depends on py-lmdb's build, so it is searched for, never assumed);
3. a put made through the table on that transaction is read back by py-lmdb in the same
   transaction and after its commit.

    python bench/native_txn_probe.py    # exit 0 and "native put visible" when all three hold
"""

from __future__ import annotations

import ctypes
import sys
import tempfile

import lmdb

# Indexes of functions in py-lmdb 3's MdbApi (lmdb/mdb_api.h), after its four ints.
TXN_ID, DBI_OPEN, PUT = 25, 26, 31
SEARCHED_WORDS = 4  # after the Environment reference: weak list / sink, engine table, transaction


class Val(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("data", ctypes.c_void_p)]


def engine_table() -> tuple[tuple[int, int, int], ctypes.Array[ctypes.c_void_p]]:
    """The engine's version and function pointers, from py-lmdb's loaded extension."""
    import lmdb.cpython

    library = ctypes.CDLL(lmdb.cpython.__file__)  # the library Python loaded: dlopen returns its handle
    try:
        table = ctypes.addressof(ctypes.c_void_p.in_dll(library, "lmdb_api_v09"))
    except ValueError as exc:
        raise SystemExit(f"py-lmdb {lmdb.__version__} exports no lmdb_api_v09 table: {exc}") from exc
    major, minor, patch, _ = (ctypes.c_int * 4).from_address(table)
    return (major, minor, patch), (ctypes.c_void_p * 48).from_address(table + 16)


def find_txn(txn: lmdb.Transaction, env: lmdb.Environment, txn_id: ctypes._CFuncPtr) -> int | None:
    """The ``MDB_txn *`` inside ``txn``, or None."""
    words = (ctypes.c_void_p * 32).from_address(id(txn))
    env_at = [i for i, word in enumerate(words) if word == id(env)]
    if not env_at:
        return None
    for i in range(env_at[0] + 1, min(env_at[0] + 1 + SEARCHED_WORDS, len(words))):
        pointer = words[i]
        if pointer and txn_id(pointer) == txn.id():
            return pointer
    return None


def main() -> int:
    version, functions = engine_table()
    print(f"py-lmdb {lmdb.__version__}, engine LMDB {'.'.join(map(str, version))}")
    pointer_t, uint_t, int_t = ctypes.c_void_p, ctypes.c_uint, ctypes.c_int
    txn_id = ctypes.CFUNCTYPE(ctypes.c_size_t, pointer_t)(functions[TXN_ID])
    dbi_open = ctypes.CFUNCTYPE(int_t, pointer_t, ctypes.c_char_p, uint_t, pointer_t)(functions[DBI_OPEN])
    put = ctypes.CFUNCTYPE(int_t, pointer_t, uint_t, pointer_t, pointer_t, uint_t)(functions[PUT])
    with tempfile.TemporaryDirectory() as directory:
        env = lmdb.open(directory, max_dbs=2)
        db = env.open_db(b"spans")
        txn = env.begin(write=True)
        txn.put(b"first", b"by py-lmdb", db=db)
        pointer = find_txn(txn, env, txn_id)
        if pointer is None:
            print("no MDB_txn * found in the Transaction object")
            return 1
        print(f"MDB_txn * found: txn_id {txn_id(pointer)} = Transaction.id() {txn.id()}")
        dbi = ctypes.c_uint()
        if dbi_open(pointer, b"spans", 0, ctypes.byref(dbi)) != 0:
            print("mdb_dbi_open through the table failed")
            return 1
        key, value = b"native", b"put through py-lmdb's LMDB table"
        key_val = Val(len(key), ctypes.cast(ctypes.c_char_p(key), ctypes.c_void_p))
        value_val = Val(len(value), ctypes.cast(ctypes.c_char_p(value), ctypes.c_void_p))
        if put(pointer, dbi.value, ctypes.byref(key_val), ctypes.byref(value_val), 0) != 0:
            print("mdb_put through the table failed")
            return 1
        in_txn = txn.get(key, db=db)
        txn.commit()
        with env.begin() as reader:
            committed = reader.get(key, db=db)
        env.close()
    if in_txn != value or committed != value:
        print(f"native put not visible: {in_txn!r} in the transaction, {committed!r} after the commit")
        return 1
    print("native put visible to py-lmdb in its transaction and after the commit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
