"""Fixtures of the sandbox's Docker-free unit tests."""

from __future__ import annotations

import pytest

from .fakes import FakeLauncher


@pytest.fixture
def launcher():
    """A fake engine for the warm pool and the reuse store; closes every socket it made."""
    fake = FakeLauncher()
    yield fake
    fake.close()
