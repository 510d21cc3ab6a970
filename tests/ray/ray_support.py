"""What the Ray strategy tests share: the plugin manager with the strategy, and the store's record
(support.ledger, re-exported)."""

from __future__ import annotations

from support.ledger import Ledger, assert_each_exactly_once, read_ledger

from agl_core.plugins import AglPluginManager, get_plugin_manager


def plugin_manager() -> AglPluginManager:
    """The installed plugins (the ray strategy's entry point among them)."""
    pm = get_plugin_manager()
    assert pm.has_plugin("strategy-ray"), "the installed agl predates the strategy-ray entry point: reinstall it"
    return pm


def node_of(worker_id: str) -> str:
    """The (shortened) Ray node id in a runner actor's worker id ``ray-runner-I-NODE-PID``."""
    return worker_id.split("-")[3]


def index_of(worker_id: str) -> int:
    return int(worker_id.split("-")[2])


__all__ = ["Ledger", "assert_each_exactly_once", "index_of", "node_of", "plugin_manager", "read_ledger"]
