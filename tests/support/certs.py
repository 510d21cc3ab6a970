"""A self-signed TLS certificate for tests, made by the openssl command line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl is needed to make a test certificate"
)


def self_signed(directory: Path, names: str = "IP:127.0.0.1,DNS:localhost") -> tuple[Path, Path]:
    """A certificate for ``names`` (a subjectAltName value) and its key, as PEM files in ``directory``."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run(
        [*request, "-addext", f"subjectAltName={names}", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key
