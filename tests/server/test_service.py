"""The executor service's rules that need no hub: which grant a hub model gets, which user names
it refuses, which client address it believes, and its configuration errors. The hub itself is in
the loop in ``tests/hub``."""

from __future__ import annotations

from pathlib import Path

import pytest
from tornado.httputil import HTTPHeaders
from traitlets import TraitError

from jupyter_exec_ext.grading import ExerciseRegistry
from jupyter_exec_ext.server.context import ExecContext
from jupyter_exec_ext.server.service import (
    ExecServiceApp,
    ServiceAccess,
    check_user_name,
    client_ip,
    parse_networks,
    readable_by_others,
)

from ..grading.notebooks import exercise_notebook, write_notebook

ACCESS = ServiceAccess(
    admin_users=frozenset({"dana"}),
    admin_groups=frozenset({"instructors"}),
    admin_roles=frozenset({"instructor"}),
    admin_services=frozenset({"gradebook"}),
    metrics_readers=frozenset({"prometheus"}),
)


@pytest.mark.parametrize(
    "model, groups, roles, role",
    [
        ({"kind": "user", "name": "alice"}, [], ["user"], "user"),
        ({"kind": "user", "name": "carol"}, ["instructors"], ["user"], "admin"),
        ({"kind": "user", "name": "erin"}, [], ["user", "instructor"], "admin"),
        ({"kind": "user", "name": "dana"}, [], [], "admin"),
        # Only what the hub tells the service counts, never groups the caller's model claims.
        (
            {"kind": "user", "name": "mallory", "groups": ["instructors"], "roles": ["instructor"]},
            [],
            ["user"],
            "user",
        ),
        # Being a hub admin grants nothing here.
        ({"kind": "user", "name": "root", "admin": True}, ["admins"], ["admin"], "user"),
        ({"kind": "service", "name": "gradebook"}, [], [], "admin"),
        ({"kind": "service", "name": "prometheus"}, [], [], "metrics"),
        ({"kind": "service", "name": "anything-else"}, [], [], "none"),
        # A service called like an admin user, or holding the instructor role, is still only a service.
        ({"kind": "service", "name": "dana"}, [], [], "none"),
        ({"kind": "service", "name": "robot"}, ["instructors"], ["instructor"], "none"),
    ],
)
def test_each_caller_gets_only_the_grant_the_configuration_names(
    model, groups, roles, role
) -> None:
    assert ACCESS.role(model, groups, roles) == role


@pytest.mark.parametrize(
    "name, bad",
    [
        ("*", "*"),
        ("a*", "*"),
        ("a,b", ","),
        ("a/b", "/"),
        ("a\tb", "\t"),
        ("a\nb", "\n"),
        ("?", "?"),
    ],
)
def test_reserved_characters_in_a_user_name_are_refused_naming_them(name, bad) -> None:
    with pytest.raises(ValueError) as refused:
        check_user_name(name, "user")
    assert f"contains {bad!r}, which the exec service reserves" in str(refused.value)


def test_ordinary_user_names_pass() -> None:
    for name in ("alice", "jean-luc.picard", "student+1@school.edu", "żaneta", "ada lovelace"):
        assert check_user_name(name, "user") == name


PROXY = parse_networks(["10.0.0.0/8", "127.0.0.1"], "trusted_proxies")


def headers(**values: str) -> HTTPHeaders:
    return HTTPHeaders({k.replace("_", "-"): v for k, v in values.items()})


def test_forwarded_addresses_count_only_from_a_trusted_proxy() -> None:
    claimed = headers(X_Forwarded_For="203.0.113.9", X_Real_Ip="203.0.113.9")
    assert client_ip("198.51.100.4", claimed, PROXY) == "198.51.100.4"  # anyone else: ignored
    assert client_ip("198.51.100.4", claimed, ()) == "198.51.100.4"  # no proxy configured
    assert client_ip("10.1.2.3", claimed, PROXY) == "203.0.113.9"


def test_the_nearest_untrusted_hop_is_the_client() -> None:
    # A client that writes its own X-Forwarded-For puts it first; the proxies append after it.
    chain = headers(X_Forwarded_For="6.6.6.6, 198.51.100.4, 10.0.0.7")
    assert client_ip("127.0.0.1", chain, PROXY) == "198.51.100.4"
    assert client_ip("127.0.0.1", headers(X_Forwarded_For="not-an-address"), PROXY) == "127.0.0.1"
    assert client_ip("127.0.0.1", headers(X_Real_Ip="198.51.100.4"), PROXY) == "198.51.100.4"


@pytest.mark.parametrize(
    "trait, value, message",
    [
        ("trusted_proxies", ["10.0.0.0/8", "proxy.local"], "'proxy.local' is not an IP address"),
        ("admin_users", ["carol", "*"], "user '*' contains '*'"),
        ("stop_timeout", -1.0, "must be 0 (no wait) or more, got -1.0"),
    ],
)
def test_a_bad_grant_or_proxy_stops_the_service_naming_it(trait, value, message) -> None:
    app = ExecServiceApp()
    with pytest.raises(TraitError) as refused:
        setattr(app, trait, value)
    assert message in str(refused.value) and f"ExecServiceApp.{trait}" in str(refused.value)


def test_exercise_files_any_user_may_read_are_found(tmp_path: Path) -> None:
    exercises = tmp_path / "exercises"
    (exercises / "week1").mkdir(parents=True)
    notebook = exercises / "week1" / "add.ipynb"
    notebook.write_text("{}")
    exercises.chmod(0o755)
    notebook.chmod(0o644)
    assert readable_by_others(exercises) == [exercises, notebook]
    exercises.chmod(0o750)
    notebook.chmod(0o640)
    assert readable_by_others(exercises) == []


def test_a_stopping_service_waits_as_long_as_the_slowest_grading_can_take(tmp_path: Path) -> None:
    app = ExecServiceApp(time_limit=10.0, max_time_limit=20.0)
    tests = [{"name": f"t{i}", "test_code": "assert True", "timeout": 15} for i in range(3)]
    write_notebook(
        tmp_path / "slow.ipynb", exercise_notebook("slow", tests=tests, limits={"time_limit": 60})
    )
    context = ExecContext(bounds=app.request_bounds(app.sandbox_config()))
    assert app.longest_request_s(context) == 20 + 30  # a run: max_time_limit
    context.registry = ExerciseRegistry(tmp_path)
    # The exercise asks for 60 s, clamped to 20, then three tests of 15 s each.
    assert app.longest_request_s(context) == 20 + 45 + 30
