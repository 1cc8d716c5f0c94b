"""Builds the executor image (and, with no registry at hand, its Debian base) idempotently."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

import docker
import docker.errors

from .errors import ImageBuildError

log = logging.getLogger(__name__)

DEFAULT_BASE_IMAGE = "python:3.12-slim"
#: What the sandbox offers besides Python: ``science`` (numpy, pandas, matplotlib) or ``stdlib``.
FLAVOURS = ("science", "stdlib")
DEFAULT_FLAVOUR = "science"
#: The offline (debootstrap) base of each flavour.
OFFLINE_BASE_IMAGES = {
    "science": "jupyter-exec-ext-base:bookworm-science",
    "stdlib": "jupyter-exec-ext-base:bookworm",
}
OFFLINE_BASE_IMAGE = OFFLINE_BASE_IMAGES["stdlib"]
#: Label of an image saying its flavour (offline bases and executor images carry it).
FLAVOUR_LABEL = "jupyter-exec-ext.flavour"
#: Marks the images this project builds.
IMAGE_LABEL = "jupyter-exec-ext.image"
#: Image label holding the fingerprint of the Dockerfile, runner and base the image was built from.
FINGERPRINT_LABEL = "jupyter-exec-ext.fingerprint"


#: What the build context holds besides the base: the Dockerfile and the runner's modules.
RUNNER_FILES = (
    "Dockerfile",
    "runner.py",
    "zygote.py",
    "harness.py",
    "student.py",
    "wire.py",
    "display.py",
    "workfiles.py",
    "backend/jupyter_exec_display.py",
)


def executor_image_dir() -> Path:
    """The build context: shipped inside the wheel, or the repository's ``executor_image/``."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "executor_image", here.parent / "executor_image"):
        if all((candidate / name).is_file() for name in RUNNER_FILES):
            return candidate
    raise ImageBuildError(
        f"the executor image sources ({', '.join(RUNNER_FILES)}) are missing from the install"
    )


def runner_digest(context: Path) -> str:
    """Hash of the runner's files (``RUNNER_FILES``: every module the container runs, the child
    programs included, and the Dockerfile that places them)."""
    h = hashlib.sha256(b"runner-files 1\0")
    for name in RUNNER_FILES:
        h.update(name.encode() + b"\0" + (context / name).read_bytes() + b"\0")
    return h.hexdigest()


@lru_cache(maxsize=1)
def runner_version() -> str:
    """Hash of the runner shipped with this package (``runner_digest``); part of every result
    cache key, so a changed runner or child program makes every old key unused."""
    try:
        return runner_digest(executor_image_dir())
    except (ImageBuildError, OSError) as e:
        # The image id in the key still separates runners; this only loses a second safeguard.
        log.warning("runner source not found (%s); the cache key relies on the image id alone", e)
        return "unknown"


def fingerprint(context: Path, base_image_id: str, flavour: str = DEFAULT_FLAVOUR) -> str:
    """Hash of everything that goes into the image, so an unchanged image is not rebuilt."""
    h = hashlib.sha256()
    # Bumped when what the build sets besides these files changes (labels, build arguments).
    h.update(b"image-format 4\0")
    h.update(b"flavour " + flavour.encode() + b"\0")
    for name in RUNNER_FILES:
        h.update(name.encode() + b"\0" + (context / name).read_bytes() + b"\0")
    h.update(base_image_id.encode())
    return h.hexdigest()


def make_offline_base(
    name: Optional[str] = None, say: Callable[[str], None] = print, flavour: str = DEFAULT_FLAVOUR
) -> str:
    """Makes a Debian bookworm + python3 base image with debootstrap and ``docker import``; the
    ``science`` flavour adds Debian's numpy, pandas and matplotlib. Returns the image's name.

    Raises:
        ImageBuildError: the script failed (not root, no debootstrap, mirror unreachable …).
    """
    _check_flavour(flavour)
    name = name or OFFLINE_BASE_IMAGES[flavour]
    script = executor_image_dir() / "make-offline-base.sh"
    if shutil.which("bash") is None:
        raise ImageBuildError("bash is needed to make the offline base image")
    mirror = os.environ.get("DEBIAN_MIRROR") or "http://deb.debian.org/debian"
    proc = subprocess.run(
        ["bash", str(script), name, mirror, flavour],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout.splitlines():
        say(line)
    if proc.returncode != 0:
        raise ImageBuildError(
            f"making the offline base image {name} failed (exit code {proc.returncode})"
        )
    return name


def _check_flavour(flavour: str) -> None:
    if flavour not in FLAVOURS:
        raise ImageBuildError(
            f"image flavour must be one of {', '.join(FLAVOURS)}, got {flavour!r}"
        )


def build_executor_image(
    client: docker.DockerClient,
    tag: str,
    base_image: str = DEFAULT_BASE_IMAGE,
    *,
    force: bool = False,
    say: Callable[[str], None] = print,
    flavour: str = DEFAULT_FLAVOUR,
) -> str:
    """Builds the executor image ``tag`` from ``base_image`` unless an identical one exists.

    ``flavour`` ``science`` gives the image numpy, pandas and matplotlib: from the base when it
    has them (the offline scientific base), else with pip (the build then needs network).

    Returns:
        The image id.

    Raises:
        ImageBuildError: the base image is absent and cannot be pulled, or the build failed.
    """
    _check_flavour(flavour)
    api = client.api
    context = executor_image_dir()
    base_id = _ensure_base(api, base_image, say)
    wanted = fingerprint(context, base_id, flavour)
    base_labels = (_inspect(api, base_image) or {}).get("Config", {}).get("Labels") or {}
    # Our offline bases say what they hold; a base that does not say may need pip, hence network.
    offline = flavour == "stdlib" or base_labels.get(FLAVOUR_LABEL) == "science"
    existing = _inspect(api, tag)
    if (
        existing
        and not force
        and (existing["Config"].get("Labels") or {}).get(FINGERPRINT_LABEL) == wanted
    ):
        say(f"executor image {tag} is up to date ({existing['Id'][:19]})")
        return existing["Id"]
    say(f"building executor image {tag} ({flavour}) from {base_image} ...")
    image_id: Optional[str] = None
    for chunk in api.build(
        path=str(context),
        tag=tag,
        buildargs={"BASE_IMAGE": base_image, "FLAVOUR": flavour},
        pull=False,
        rm=True,
        # Not the containers' "managed" label: containers inherit image labels, and the reaper must
        # not take a container someone started from this image by hand for one of its own.
        forcerm=True,
        decode=True,
        labels={IMAGE_LABEL: "executor", FINGERPRINT_LABEL: wanted, FLAVOUR_LABEL: flavour},
        # From our offline bases the Dockerfile fetches nothing, so its steps need no network
        # (nor the engine's bridge); only pip on another base does.
        network_mode="none" if offline else None,
    ):
        if "error" in chunk:
            raise ImageBuildError(f"building {tag} failed: {chunk['error'].strip()}")
        if "stream" in chunk and chunk["stream"].strip():
            log.debug("%s", chunk["stream"].rstrip())
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
    if not image_id:
        built = _inspect(api, tag)
        assert built is not None, f"the engine built {tag} but does not show it"
        image_id = built["Id"]
    say(f"executor image {tag} built ({image_id[:19]})")
    return image_id


def _inspect(api: docker.APIClient, name: str) -> Optional[dict]:
    try:
        return api.inspect_image(name)
    except docker.errors.ImageNotFound:
        return None


def _ensure_base(api: docker.APIClient, base_image: str, say: Callable[[str], None]) -> str:
    found = _inspect(api, base_image)
    if found:
        return found["Id"]
    say(f"base image {base_image} is not present; trying to pull it ...")
    try:
        repository, _, tag = base_image.partition(":")
        api.pull(repository, tag=tag or "latest")
    except docker.errors.APIError as e:
        raise ImageBuildError(
            f"base image {base_image} is not present and cannot be pulled ({e.explanation or e}); "
            "without a registry, use --offline-base to make a Debian base with debootstrap"
        ) from None
    return api.inspect_image(base_image)["Id"]
