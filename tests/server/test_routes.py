"""The three route tables (the extension's, remote mode's and the executor service's) are
written out class by class; they must serve the same API."""

from __future__ import annotations

from jupyter_exec_ext.server import NAMESPACE, ROUTES
from jupyter_exec_ext.server.handlers import ExecAPIHandler, ExecRouteBase
from jupyter_exec_ext.server.remote import REMOTE_ROUTES, ForwardRoute
from jupyter_exec_ext.server.service import SERVICE_ROUTES, ServiceHandler


def logic_of(handler: type) -> type:
    """The route class a handler serves (its first base below ``ExecRouteBase``'s bindings)."""
    return handler.__bases__[0]


def test_remote_mode_forwards_every_local_route_with_its_methods() -> None:
    remote = dict(REMOTE_ROUTES)
    assert [p for p, _ in REMOTE_ROUTES] == [p for p, _ in ROUTES] + [f"{NAMESPACE}/authoring/mode"]
    for pattern, handler in ROUTES:
        forward = remote[pattern]
        assert issubclass(forward, ForwardRoute)
        assert forward.route == handler.route
        assert forward.allowed_methods() == handler.allowed_methods(), pattern


def test_the_service_serves_every_local_route_with_the_same_logic() -> None:
    service = dict(SERVICE_ROUTES)
    for pattern, handler in ROUTES:
        assert issubclass(handler, ExecAPIHandler)
        assert issubclass(logic_of(handler), ExecRouteBase)
        bound = service[pattern]
        assert issubclass(bound, ServiceHandler) and logic_of(bound) is logic_of(handler), pattern


def test_every_handler_is_a_class_written_in_its_module() -> None:
    """Found by grep: each name is defined by a ``class`` statement of the module it lives in."""
    import inspect

    for pattern, handler in ROUTES + REMOTE_ROUTES + SERVICE_ROUTES:
        source = inspect.getsource(inspect.getmodule(handler))
        assert f"class {handler.__name__}(" in source, (pattern, handler)
