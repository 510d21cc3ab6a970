"""A plugin whose import fails, as a plugin with a missing dependency would."""

import agl_dependency_that_is_not_installed  # noqa: F401
