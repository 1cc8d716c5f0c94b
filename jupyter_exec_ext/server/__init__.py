"""The jupyter_server extension: ``ExecExtApp``, the REST handlers under ``api/exec/v1/`` and their
OpenAPI spec (``openapi.yaml`` next to this file)."""

from pathlib import Path

from .app import KERNEL_TOKEN_ENV, KERNEL_URL_ENV, ExecExtApp
from .handlers import NAMESPACE, ROUTES

#: The OpenAPI 3 description of the routes, shipped in the package.
OPENAPI_SPEC = Path(__file__).with_name("openapi.yaml")

__all__ = [
    "KERNEL_TOKEN_ENV",
    "KERNEL_URL_ENV",
    "NAMESPACE",
    "OPENAPI_SPEC",
    "ROUTES",
    "ExecExtApp",
]
