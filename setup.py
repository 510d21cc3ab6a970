"""The one compiled module of agl: the store writer's span loop (agl_core/store/lmdb/span_loop.pyx).

Everything else is in pyproject.toml. The extension is optional: where it cannot be compiled (no C
compiler), the install goes on without it and the store runs its Python twin (span_path.py).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("agl_core.store.lmdb.span_loop", ["agl_core/store/lmdb/span_loop.pyx"], optional=True)],
        compiler_directives={"language_level": "3"},
    )
)
