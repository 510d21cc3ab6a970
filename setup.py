"""The compiled modules of agl: the store writer's span loop (agl_core/store/lmdb/span_loop.pyx,
with agl_core/store/lmdb/attempt_beat.pyx), the edge check's wire walk (agl_core/store/wire_check.pyx)
and the span-id check (agl_core/store/span_id_check.pyx), which share wire readers (wire_read.pxd);
the span loop builds its keys with agl_core/store/lmdb/span_bytes.pxd.

Everything else is in pyproject.toml. The extensions are optional: where they cannot be compiled
(no C compiler), the install goes on without them; the store runs its Python twin of the span loop
(span_path.py) and the edge check parses every batch (agl_server/span_checks.py).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension("agl_core.store.lmdb.span_loop", ["agl_core/store/lmdb/span_loop.pyx"], optional=True),
            Extension("agl_core.store.lmdb.attempt_beat", ["agl_core/store/lmdb/attempt_beat.pyx"], optional=True),
            Extension("agl_core.store.wire_check", ["agl_core/store/wire_check.pyx"], optional=True),
            Extension("agl_core.store.span_id_check", ["agl_core/store/span_id_check.pyx"], optional=True),
        ],
        compiler_directives={"language_level": "3"},
    )
)
