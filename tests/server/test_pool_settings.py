"""The settings of the self-sizing warm pool and of grading in the student's own container."""

from __future__ import annotations

import pytest
from traitlets import TraitError
from traitlets.config import Config

from jupyter_exec_ext.server import ExecExtApp


def test_defaults() -> None:
    app = ExecExtApp()
    assert (app.pool_size, app.pool_max_size, app.pool_memory_budget, app.pool_shrink_after) == (
        2,
        32,
        1024,
        120.0,
    )
    assert app.grade_in_own_container is True
    assert app.sandbox_config().grade_in_own_container is True


def test_the_environment_sets_them_and_config_wins(monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_EXECUTOR_POOL_MAX_SIZE", "8")
    monkeypatch.setenv("DOCKER_EXECUTOR_POOL_MEMORY_BUDGET", "256")
    monkeypatch.setenv("DOCKER_EXECUTOR_POOL_SHRINK_AFTER", "30")
    monkeypatch.setenv("DOCKER_EXECUTOR_GRADE_IN_OWN_CONTAINER", "false")
    app = ExecExtApp()
    assert (app.pool_max_size, app.pool_memory_budget, app.pool_shrink_after) == (8, 256, 30.0)
    assert app.sandbox_config().grade_in_own_container is False
    app = ExecExtApp(
        config=Config({"ExecExtApp": {"pool_max_size": 4, "grade_in_own_container": True}})
    )
    assert app.pool_max_size == 4 and app.sandbox_config().grade_in_own_container is True


@pytest.mark.parametrize(
    "traits, words",
    [
        ({"pool_max_size": -1}, "ExecExtApp.pool_max_size must be 0 \\(off\\) or more"),
        ({"pool_memory_budget": -1}, "ExecExtApp.pool_memory_budget must be 0 \\(off\\) or more"),
        (
            {"pool_shrink_after": 0.0},
            "ExecExtApp.pool_shrink_after must be a positive, finite number",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_trait(traits: dict, words: str) -> None:
    with pytest.raises(TraitError, match=words):
        ExecExtApp(config=Config({"ExecExtApp": traits}))


@pytest.mark.parametrize(
    "name, value",
    [("POOL_MAX_SIZE", "many"), ("POOL_SHRINK_AFTER", "-3"), ("GRADE_IN_OWN_CONTAINER", "perhaps")],
)
def test_a_bad_environment_variable_is_named(monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"DOCKER_EXECUTOR_{name}", value)
    with pytest.raises((TraitError, ValueError), match=f"DOCKER_EXECUTOR_{name}"):
        app = ExecExtApp()
        app.pool_max_size, app.pool_shrink_after, app.grade_in_own_container  # noqa: B018
