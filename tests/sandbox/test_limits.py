"""Limits: the seed's defaults, parsing of sizes, rejection of nonsense, clamping, env config."""

import pytest

from jupyter_exec_ext.sandbox import LimitError, Limits, SandboxConfig
from jupyter_exec_ext.sandbox.limits import (
    parse_memory_mb,
    parse_positive_float,
    parse_positive_int,
)


def test_defaults_are_the_seeds():
    limits = Limits()
    assert (limits.memory_mb, limits.cpus, limits.time_s, limits.pids, limits.nofile) == (
        256,
        0.5,
        30.0,
        50,
        1024,
    )


@pytest.mark.parametrize(
    "value, mb",
    [
        ("256m", 256),
        ("1g", 1024),
        ("1G", 1024),
        (512, 512),
        ("512", 512),
        ("64MiB", 64),
        ("2gb", 2048),
        ("131072k", 128),
        (100.2, 101),
    ],
)
def test_memory_sizes_parse_to_mib(value, mb):
    assert Limits.from_mapping({"memory_limit": value}).memory_mb == mb


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("memory_limit", "-5m", "memory_limit"),
        ("memory_limit", 0, "memory_limit must be positive"),
        ("memory_limit", "lots", "memory_limit must be a positive size"),
        ("memory_limit", "1m", "below the minimum of 16 MiB"),
        ("memory_limit", True, "memory_limit must be a number"),
        ("cpu_limit", -1, "cpu_limit must be positive"),
        ("cpu_limit", "fast", "cpu_limit must be a positive number"),
        ("cpu_limit", float("nan"), "cpu_limit must be positive"),
        ("time_limit", 0, "time_limit must be positive"),
        ("time_limit", "forever", "time_limit must be a positive number"),
        ("pids_limit", 2.5, "pids_limit must be a positive whole number"),
        ("pids_limit", -3, "pids_limit must be positive"),
        ("nofile_limit", "many", "nofile_limit must be a positive whole number"),
    ],
)
def test_nonsense_is_rejected_naming_the_field(field, value, words):
    with pytest.raises(LimitError) as err:
        Limits.from_mapping({field: value})
    assert words in str(err.value)


def test_unknown_field_is_named():
    with pytest.raises(LimitError, match="unknown limit 'memory'"):
        Limits.from_mapping({"memory": "1g"})


def test_constructor_validates_too():
    with pytest.raises(LimitError, match="pids_limit"):
        Limits(pids=0)


def test_time_accepts_seconds_suffix():
    assert Limits.from_mapping({"time_limit": "2.5s"}).time_s == 2.5


def test_clamp_to_admin_maxima_reports_each_change():
    maxima = Limits(memory_mb=512, cpus=1.0, time_s=60, pids=100, nofile=2048)
    asked = Limits.from_mapping({"memory_limit": "2g", "time_limit": 10, "cpu_limit": 4})
    clamped, notes = asked.clamped(maxima)
    assert (clamped.memory_mb, clamped.cpus, clamped.time_s) == (512, 1.0, 10.0)
    assert notes == [
        "memory_limit 2048 MiB is above the admin maximum of 512 MiB; using 512",
        "cpu_limit 4 CPU is above the admin maximum of 1 CPU; using 1",
    ]


def test_to_dict_round_trips():
    limits = Limits(memory_mb=128, cpus=0.25, time_s=5, pids=20, nofile=64)
    assert Limits.from_mapping(limits.to_dict()) == limits


def test_config_reads_the_seeds_environment_variables():
    config = SandboxConfig.from_env(
        {
            "DOCKER_EXECUTOR_ENABLED": "false",
            "DOCKER_EXECUTOR_IMAGE": "my-executor:1",
            "DOCKER_EXECUTOR_NETWORK": "none",
            "DOCKER_EXECUTOR_MEMORY_LIMIT": "512m",
            "DOCKER_EXECUTOR_CPU_LIMIT": "1.5",
            "DOCKER_EXECUTOR_TIME_LIMIT": "10",
        }
    )
    assert config.enabled is False
    assert config.image == "my-executor:1"
    assert config.default_limits == Limits(memory_mb=512, cpus=1.5, time_s=10)
    # An explicit default above the built-in maxima raises the maxima with it.
    assert config.max_limits.cpus == 1.5


def test_config_env_error_names_the_variable():
    with pytest.raises(
        LimitError, match="DOCKER_EXECUTOR_MEMORY_LIMIT: memory_limit must be positive"
    ):
        SandboxConfig.from_env({"DOCKER_EXECUTOR_MEMORY_LIMIT": "0"})
    with pytest.raises(LimitError, match="DOCKER_EXECUTOR_ENABLED"):
        SandboxConfig.from_env({"DOCKER_EXECUTOR_ENABLED": "maybe"})


def test_config_reads_the_reuse_settings_and_names_a_bad_one():
    config = SandboxConfig.from_env(
        {
            "DOCKER_EXECUTOR_REUSE_RUNS": "5",
            "DOCKER_EXECUTOR_REUSE_IDLE": "2.5",
            "DOCKER_EXECUTOR_REUSE_KEPT": "100",
        }
    )
    assert (config.reuse_runs, config.reuse_idle_s, config.reuse_kept) == (5, 2.5, 100)
    assert (SandboxConfig.from_env({}).reuse_runs, SandboxConfig.from_env({}).reuse_kept) == (
        50,
        128,
    )
    with pytest.raises(LimitError, match="DOCKER_EXECUTOR_REUSE_KEPT must be a whole number"):
        SandboxConfig.from_env({"DOCKER_EXECUTOR_REUSE_KEPT": "-3"})
    with pytest.raises(LimitError, match="DOCKER_EXECUTOR_REUSE_RUNS must be a whole number"):
        SandboxConfig.from_env({"DOCKER_EXECUTOR_REUSE_RUNS": "lots"})
    for bad in ("0", "-1", "soon"):
        with pytest.raises(
            LimitError, match="DOCKER_EXECUTOR_REUSE_IDLE must be a number of seconds above 0"
        ):
            SandboxConfig.from_env({"DOCKER_EXECUTOR_REUSE_IDLE": bad})


def test_config_refuses_root():
    with pytest.raises(ValueError, match="other than root"):
        SandboxConfig(user="0:0")


# -- the parsers' edges (each one a way the rules could change unnoticed) ---------------------------


def test_the_smallest_memory_docker_accepts_is_allowed_and_one_less_is_not():
    assert Limits.from_mapping({"memory_limit": 16}).memory_mb == 16
    assert Limits.from_mapping({"memory_limit": "16m"}).memory_mb == 16
    with pytest.raises(LimitError, match="memory_limit of 15 MiB is below the minimum of 16 MiB"):
        Limits.from_mapping({"memory_limit": 15})


def test_the_smallest_whole_number_is_one():
    assert Limits.from_mapping({"pids_limit": 1, "nofile_limit": "1"}).pids == 1
    with pytest.raises(LimitError, match="pids_limit must be positive, got 0"):
        Limits.from_mapping({"pids_limit": 0})


@pytest.mark.parametrize("value, number", [(4, 4), (4.0, 4), ("12", 12), (" 12 ", 12), ("007", 7)])
def test_whole_numbers_from_json_numbers_and_text(value, number):
    parsed = parse_positive_int(value, "pids_limit")
    assert parsed == number and type(parsed) is int


def test_a_boolean_is_no_number_and_the_message_names_the_field():
    for parse in (parse_positive_int, parse_positive_float, parse_memory_mb):
        with pytest.raises(LimitError, match="^some_field must be a number, got True$"):
            parse(True, "some_field")


def test_memory_errors_name_memory_limit_by_default():
    with pytest.raises(LimitError, match="^memory_limit must be a positive size"):
        parse_memory_mb("lots")


def test_a_seconds_suffix_only_where_seconds_are_meant():
    assert parse_positive_float("30s", "time_limit", seconds=True) == 30.0
    with pytest.raises(LimitError, match="cpu_limit must be a positive number, got '2s'"):
        parse_positive_float("2s", "cpu_limit")
    with pytest.raises(LimitError, match="cpu_limit must be a positive number"):
        Limits.from_mapping({"cpu_limit": "2s"})


def test_limits_that_are_not_an_object_are_named():
    with pytest.raises(LimitError, match="^limits must be an object, got list$"):
        Limits.from_mapping(["memory_limit"])


def test_an_unknown_limit_lists_the_known_ones():
    with pytest.raises(LimitError) as err:
        Limits.from_mapping({"disk": "1g"})
    assert str(err.value) == (
        "unknown limit 'disk'; known limits: memory_limit, cpu_limit, time_limit, "
        "pids_limit, nofile_limit"
    )


# -- which container may serve which run (the warm pool's and per-user reuse's one rule) --------


def test_a_container_serves_a_run_with_the_same_limits_and_no_longer_time():
    container = Limits(memory_mb=256, cpus=0.5, time_s=30, pids=50, nofile=1024)
    assert container.can_serve(container)
    # The runner enforces the run's own time limit: a shorter or equal one fits.
    assert container.can_serve(Limits(memory_mb=256, cpus=0.5, time_s=5, pids=50, nofile=1024))
    assert container.can_serve(Limits(memory_mb=256, cpus=0.5, time_s=30.0, pids=50, nofile=1024))
    # A longer one does not: the container's expiry was set for its own.
    assert not container.can_serve(
        Limits(memory_mb=256, cpus=0.5, time_s=30.5, pids=50, nofile=1024)
    )


@pytest.mark.parametrize(
    "field, other",
    [
        ("memory_mb", 257),
        ("memory_mb", 255),
        ("cpus", 0.25),
        ("cpus", 1.0),
        ("pids", 49),
        ("pids", 51),
        ("nofile", 1023),
        ("nofile", 1025),
    ],
)
def test_a_container_never_serves_other_engine_limits_lower_or_higher(field, other):
    # Memory, CPU, processes and open files are set by the engine on the container: a run asking
    # for less would get more, one asking for more would get less.
    container = Limits(memory_mb=256, cpus=0.5, time_s=30, pids=50, nofile=1024)
    run = Limits(
        **{"memory_mb": 256, "cpus": 0.5, "time_s": 10, "pids": 50, "nofile": 1024, field: other}
    )
    assert not container.can_serve(run)
    assert container.can_serve(Limits(memory_mb=256, cpus=0.5, time_s=10, pids=50, nofile=1024))
