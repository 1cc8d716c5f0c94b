"""Replicas of the executor service that start at once on one empty PostgreSQL database: each
migrates the schema on start, and they take turns (an advisory lock) instead of failing on a
table another one has just made."""

from __future__ import annotations

import multiprocessing

import pytest

from jupyter_exec_ext.gradebook.store import GradebookStore

pytestmark = pytest.mark.postgres


def start_store(url: str) -> str:
    """What a replica does on start: open the gradebook (migrating it); '' or the error."""
    try:
        GradebookStore(url).close()
        return ""
    except Exception as e:  # the failure is the test's finding
        return repr(e)


def test_replicas_starting_at_once_on_an_empty_database_all_come_up(postgres_cluster) -> None:
    context = multiprocessing.get_context("spawn")  # separate processes, as replicas are
    with context.Pool(4) as pool:
        for _ in range(3):
            url = postgres_cluster.new_database()
            assert pool.map(start_store, [url] * 4) == [""] * 4
            store = GradebookStore(url, migrate_schema=False)
            try:
                assert store.list() == (0, [])
            finally:
                store.close()
