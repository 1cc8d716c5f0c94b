"""Exceptions of the sandbox layer; the REST API maps SandboxUnavailableError to HTTP 503."""


class SandboxError(Exception):
    """Base class of every error the sandbox raises (never for student code failing)."""


class LimitError(SandboxError, ValueError):
    """A requested limit is not a sensible value; the message names the field."""


class SandboxUnavailableError(SandboxError):
    """The sandbox cannot run anything right now (engine down, image missing, engine refused)."""


class DockerUnavailableError(SandboxUnavailableError):
    """The Docker engine cannot be reached."""

    def __init__(self, detail: str = ""):
        self.detail = detail
        super().__init__("Docker not available" + (f": {detail}" if detail else ""))


class ExecutorImageMissingError(SandboxUnavailableError):
    """The executor image is not on the engine (there is no registry to pull it from)."""

    def __init__(self, image: str):
        self.image = image
        super().__init__(
            f"executor image '{image}' is not present on the Docker engine; "
            "build it with `jupyter exec-ext build-image`"
        )


class ImageBuildError(SandboxError):
    """Building the base or executor image failed; the message carries the builder's words."""
