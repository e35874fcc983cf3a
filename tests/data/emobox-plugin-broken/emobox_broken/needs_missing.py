"""Fault: imports a dependency that is not installed."""

import emobox_dependency_that_is_not_installed  # noqa: F401
