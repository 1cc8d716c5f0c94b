"""The key of a cached result: a digest of everything that can change what a run prints."""

from __future__ import annotations

import hashlib
import json

from .. import __version__
from .config import SandboxConfig
from .limits import Limits
from .models import ExecutionRequest

#: Part of every key: bump it when the key material or the stored value changes shape.
KEY_FORMAT = 1


def cache_key(
    request: ExecutionRequest, limits: Limits, image_id: str, runner: str, config: SandboxConfig
) -> str:
    """The sha256 of everything that can change a run's result.

    Args:
        request: the code, stdin and policy.
        limits: the limits the run will actually have (after clamping), so requests that clamp to
            the same limits share an entry.
        image_id: the executor image's id (not its tag: a rebuilt image gets a new id).
        runner: the runner version (``runner_version()``).
        config: the sandbox settings that shape a run: output cap, ``/tmp`` size, network,
            OCI runtime, user.

    Returns:
        64 hex digits.
    """
    material = {
        "format": KEY_FORMAT,
        # Host-side interpretation of a run (messages, statuses) changes with the package.
        "package": __version__,
        "image_id": image_id,
        "runner": runner,
        "code": request.code,
        "stdin": request.stdin,
        "limits": limits.to_dict(),
        "policy": request.policy.to_dict() if request.policy is not None else None,
        "files": [[f.name, hashlib.sha256(f.data).hexdigest()] for f in request.files],
        "display": [config.display_limit, config.display_bytes],
        "output_limit_bytes": config.output_limit_bytes,
        "tmpfs_mb": config.tmpfs_mb,
        "network": config.network,
        "runtime": config.runtime,
        "user": config.user,
    }
    # ensure_ascii: code may hold lone surrogates, which UTF-8 cannot encode.
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()
