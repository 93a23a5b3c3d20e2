"""The npm ``convex`` install fixture of ``tests/compat`` (one install per machine)."""

from compat.conftest import convex_npm  # noqa: F401 - a fixture
