"""Every configuration name the documentation gives an admin still works: each trait the docs
name exists, configurable, on the app they name it on, and each environment variable the docs
give as a trait's default is the one the trait reads. Admins' config files and environments
must keep working whatever the code inside looks like."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from traitlets.config import Config

from jupyter_exec_ext.server import ExecExtApp
from jupyter_exec_ext.server.config import EnvironmentDefaults, ExecSettings
from jupyter_exec_ext.server.service import ExecServiceApp

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
APPS = {"ExecExtApp": ExecExtApp, "ExecServiceApp": ExecServiceApp, "ExecSettings": ExecSettings}

#: trait -> (what the variable is set to, the value the trait then has); built-in defaults differ.
SAMPLES = {
    "enabled": ("false", False),
    "image": ("example/executor:doc", "example/executor:doc"),
    "network": ("docnet", "docnet"),
    "runtime": ("runsc", "runsc"),
    "owner": ("doc-owner", "doc-owner"),
    "seccomp": ("engine", "engine"),
    "memory_limit": ("300m", "300m"),
    "cpu_limit": ("0.75", 0.75),
    "time_limit": ("12", 12.0),
    "pids_limit": ("60", 60),
    "nofile_limit": ("2000", 2000),
    "display_limit": ("3", 3),
    "display_bytes": ("12345", 12345),
    "data_files_bytes": ("4096", 4096),
    "pool_size": ("3", 3),
    "pool_max_size": ("9", 9),
    "pool_memory_budget": ("512", 512),
    "pool_shrink_after": ("30", 30.0),
    "grade_in_own_container": ("false", False),
    "reuse_runs": ("7", 7),
    "reuse_idle": ("9", 9.0),
    "reuse_kept": ("5", 5),
    "cache_enabled": ("false", False),
    "redis_url": ("redis://127.0.0.1:6379/3", "redis://127.0.0.1:6379/3"),
    "cache_ttl": ("90", 90.0),
    "cache_secret": ("a-secret-of-twenty-chars", "a-secret-of-twenty-chars"),
    "submit_rate_limit": ("4", 4),
    "submit_rate_window": ("60", 60.0),
    "db_url": ("sqlite:////tmp/doc.sqlite", "sqlite:////tmp/doc.sqlite"),
    "shared_state_url": ("redis://:pw@redis.internal:6379/1", "redis://:pw@redis.internal:6379/1"),
    "service_url": (
        "http://hub:8000/services/exec/api/exec/v1/",
        "http://hub:8000/services/exec/api/exec/v1/",
    ),
    "service_token": ("doc-token", "doc-token"),
    "base_url": ("/services/doc/", "/services/doc/"),
    "db_path": ("/tmp/doc-submissions.sqlite", "/tmp/doc-submissions.sqlite"),
    "ip": ("http://10.1.2.3:10555", "10.1.2.3"),
    "port": ("http://10.1.2.3:10555", 10555),
}


def documented_names() -> set[tuple[str, str]]:
    """``(class, trait)`` for every ``c.Class.trait`` or ``--Class.trait`` in the docs."""
    found = set()
    for doc in DOCS:
        for cls, trait in re.findall(
            r"(?:c\.|--)(ExecExtApp|ExecServiceApp|ExecSettings)\.(\w+)",
            doc.read_text(encoding="utf-8"),
        ):
            found.add((cls, trait))
    return found


def table_rows(doc: Path, heading: str) -> list[tuple[list[str], str]]:
    """The ``| trait | default | meaning |`` rows under ``heading``: the trait names and the
    default's text."""
    text = doc.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    table = section[section.index("| trait |") :]
    rows = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append((re.findall(r"`(\w+)`", cells[0]), cells[1]))
    return rows


def documented_environment() -> dict[tuple[str, str], str]:
    """``(class, trait) -> variable`` from the trait tables: the extension's (internals,
    "Configuration"; also the service's, docs/hub.md says) and the service's own (docs/hub.md)."""
    found = {}
    tables = [
        (ROOT / "docs" / "internals.md", "### Configuration", ("ExecExtApp", "ExecServiceApp")),
        (ROOT / "docs" / "hub.md", "Service-only traits", ("ExecServiceApp",)),
    ]
    for doc, heading, classes in tables:
        for traits, default in table_rows(doc, heading):
            pattern = r"((?:DOCKER_EXECUTOR|JUPYTER_EXEC|JUPYTERHUB)_[A-Z_*]+)"
            variables = re.findall(pattern, default)
            for i, trait in enumerate(traits):
                if any(v.endswith("_*") for v in variables):  # "DOCKER_EXECUTOR_*": by its name
                    variable = f"DOCKER_EXECUTOR_{trait.upper()}"
                elif len(variables) == 1:  # "from X" for each trait of the row
                    variable = variables[0]
                else:  # "X, Y, 300 s": one default per trait, in order
                    parts = default.split(",")
                    named = re.findall(pattern, parts[i]) if i < len(parts) else []
                    if not named:
                        continue
                    variable = named[0]
                for cls in classes:
                    if trait in APPS[cls].class_trait_names() or cls == "ExecExtApp":
                        found[(cls, trait)] = variable
    return found


def test_the_documentation_names_the_traits_this_test_checks() -> None:
    names = documented_names()
    assert ("ExecExtApp", "seccomp") in names and ("ExecServiceApp", "db_url") in names
    environment = documented_environment()
    assert environment[("ExecExtApp", "time_limit")] == "DOCKER_EXECUTOR_TIME_LIMIT"
    assert environment[("ExecServiceApp", "db_path")] == "JUPYTER_EXEC_SERVICE_DB"
    assert len(environment) >= 30


@pytest.mark.parametrize("cls, trait", sorted(documented_names()))
def test_every_documented_trait_is_configurable_on_its_app(cls: str, trait: str) -> None:
    traits = APPS[cls].class_traits(config=True)
    assert trait in traits, f"the docs name c.{cls}.{trait}, which is not a config trait"


@pytest.mark.parametrize("cls, trait", sorted(documented_environment()))
def test_every_documented_variable_is_what_its_trait_reads(
    cls: str, trait: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    variable = documented_environment()[(cls, trait)]
    assert trait in APPS[cls].class_traits(config=True), f"{cls}.{trait} is documented, not a trait"
    assert trait in SAMPLES, f"add a sample value of {variable} for {trait} to this test"
    raw, expected = SAMPLES[trait]
    monkeypatch.setenv(variable, raw)
    app = APPS[cls]()
    assert getattr(app, trait) == expected, f"{cls}.{trait} does not follow {variable}={raw!r}"
    # The configuration wins over the environment, under both of the documented section names.
    if trait in ExecSettings.class_trait_names():
        for section in (cls, "ExecSettings"):
            configured = APPS[cls](
                config=Config({section: {trait: getattr(ExecSettings(), trait)}})
            )
            assert getattr(configured, trait) == getattr(ExecSettings(), trait)


def test_every_environment_default_is_a_documented_variable() -> None:
    """No trait reads a variable the docs do not give (the reverse of the test above). The
    maxima follow their default when it is higher ("or the default, if higher")."""
    documented = {trait for cls, trait in documented_environment()}
    text = "".join(doc.read_text(encoding="utf-8") for doc in DOCS)
    for trait in EnvironmentDefaults.TRAITS:
        if trait.startswith("max_"):
            assert trait[4:] in documented, trait
        else:
            assert trait in documented or f"DOCKER_EXECUTOR_{trait.upper()}" in text, trait


def test_a_maximum_follows_a_higher_default_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_EXECUTOR_TIME_LIMIT", "200")
    monkeypatch.setenv("DOCKER_EXECUTOR_MEMORY_LIMIT", "2g")
    app = ExecServiceApp()
    assert (app.time_limit, app.max_time_limit) == (200.0, 200.0)
    assert (app.memory_limit, app.max_memory_limit) == ("2048m", "2048m")


def test_a_bad_variable_stops_start_up_naming_it(monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_EXECUTOR_POOL_SIZE", "many")
    with pytest.raises(Exception, match="DOCKER_EXECUTOR_POOL_SIZE must be a whole number"):
        ExecExtApp().pool_size  # noqa: B018 (reading the trait is what raises)
    monkeypatch.setenv("DOCKER_EXECUTOR_CPU_LIMIT", "lots")
    with pytest.raises(Exception, match="invalid environment for jupyter_exec_ext: .*CPU"):
        ExecExtApp().cpu_limit  # noqa: B018 (reading the trait is what raises)
