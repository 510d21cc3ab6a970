"""A run on a Ray cluster with the ``ray`` strategy: submit it as a Ray job (or a KubeRay RayJob,
see ``rayjob.yaml``); the strategy connects to the job's cluster (``address="auto"``).

    ray job submit --address http://HEAD:8265 --working-dir examples/ray -- python train.py --runners 8

agl-server runs as an actor on the node that offers the ``agl_server`` resource (the head in
``raycluster.yaml``), its data in ``AGL_DATA_DIR`` on that node's disk (a PersistentVolume);
the runners go to nodes that offer ``agl_runner``. ``AGL_TOKEN`` (from a Kubernetes Secret) is
the server's token; with ``AGL_TLS_DIR`` (``tls.crt``, ``tls.key``, ``ca.crt``, from
cert-manager) the server serves TLS under the name ``AGL_SERVER_NAME``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from parity_agent import parity

from agl_core.trainer import Trainer


def strategy(runners: int) -> dict[str, object]:
    spec: dict[str, object] = {
        "type": "ray",
        "address": "auto",  # the cluster this job runs on
        "n_runners": runners,
        "runner_resources": {"num_cpus": 1, "resources": {"agl_runner": 1}},
        "server_resources": {"resources": {"agl_server": 1}},
        "data_dir": os.environ.get("AGL_DATA_DIR", "/data/agl"),
        "host": "0.0.0.0",
        "token": os.environ.get("AGL_TOKEN") or None,
    }
    tls = os.environ.get("AGL_TLS_DIR")
    if tls:
        spec.update(
            server_args=["--tls-cert", f"{tls}/tls.crt", "--tls-key", f"{tls}/tls.key"],
            tls=True,
            root_certificates=Path(tls, "ca.crt").read_bytes(),
            advertise_host=os.environ["AGL_SERVER_NAME"],  # a name the certificate carries
        )
    return spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runners", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    result = Trainer(strategy=strategy(args.runners), progress="lines").fit(parity, list(range(args.tasks)))
    print(result)


if __name__ == "__main__":
    main()
