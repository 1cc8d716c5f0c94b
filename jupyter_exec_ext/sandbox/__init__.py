"""Framework-free Docker sandbox: limits, request/result models, the Docker backend, code policy,
result cache.

Nothing here imports Jupyter; the server, the CLI and the kernel client all stand on this package.
"""

from .cache import CacheConfig, CachingSandbox
from .config import DEFAULT_IMAGE, LABEL, SandboxConfig
from .docker_sandbox import DockerSandbox
from .errors import (
    DockerUnavailableError,
    ExecutorImageMissingError,
    ImageBuildError,
    LimitError,
    SandboxError,
    SandboxUnavailableError,
)
from .limits import Limits
from .live import LiveControl
from .models import (
    Check,
    CheckOutcome,
    CheckResult,
    DataFile,
    ExecutionRequest,
    ExecutionResult,
    Status,
)
from .policy import PROFILES, SAFE_MODULES, CodePolicy, PolicyViolation

__all__ = [
    "Check",
    "CheckOutcome",
    "CheckResult",
    "DataFile",
    "DEFAULT_IMAGE",
    "LABEL",
    "PROFILES",
    "SAFE_MODULES",
    "CacheConfig",
    "CachingSandbox",
    "CodePolicy",
    "DockerSandbox",
    "DockerUnavailableError",
    "ExecutionRequest",
    "ExecutionResult",
    "ExecutorImageMissingError",
    "ImageBuildError",
    "LimitError",
    "Limits",
    "LiveControl",
    "PolicyViolation",
    "SandboxConfig",
    "SandboxError",
    "SandboxUnavailableError",
    "Status",
]
