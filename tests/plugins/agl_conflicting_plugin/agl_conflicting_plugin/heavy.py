"""Stands for a heavy dependency; importing it fails, so a test sees whether anything imported it."""

raise ImportError("agl_conflicting_plugin.heavy was imported (it stands for a dependency that is not installed)")
