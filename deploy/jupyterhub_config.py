"""JupyterHub configuration of the hub stack in docker-compose.yml (see docs/hub.md).

The executor service runs in its own container, the only one with the Docker socket; the hub
knows it as an external service. Each student's server runs in this container as that student's
own system user (LocalProcessSpawner): the hub runs as root, and its database, cookie secret,
proxy token and environment are root's alone.
"""

import os
import pwd
import subprocess

c = get_config()  # noqa: F821 (provided by JupyterHub)

c.JupyterHub.bind_url = "http://0.0.0.0:8000"  # published on 127.0.0.1 by docker-compose.yml
c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
c.JupyterHub.hub_connect_url = "http://hub:8081"
c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/srv/jupyterhub/jupyterhub_cookie_secret"

# A demo login: the users listed in DEMO_USERS, with the shared DEMO_PASSWORD (no default; at
# least 8 characters), and nobody else. Every listed user knows the shared password, so any of
# them can log in as any other: use a real authenticator (OAuth, LDAP, LTI) for a course.
DEMO_USERS = sorted({name.strip() for name in os.environ.get("DEMO_USERS", "").split(",") if name.strip()})
if not DEMO_USERS:
    raise SystemExit("DEMO_USERS is empty: list the user names that may log in (comma-separated)")
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ["DEMO_PASSWORD"]
c.Authenticator.allowed_users = set(DEMO_USERS)
c.Authenticator.allow_all = False
# Names that are valid system user names, so that each gets an account of its own.
c.Authenticator.username_pattern = r"^[a-z][a-z0-9_-]{0,30}$"
# The instructor logs in with a password of their own (at least 32 characters), never the shared
# one; without INSTRUCTOR_PASSWORD nobody can log in as the instructor.
if os.environ.get("INSTRUCTOR_PASSWORD"):
    c.SharedPasswordAuthenticator.admin_password = os.environ["INSTRUCTOR_PASSWORD"]
    c.Authenticator.admin_users = {"instructor"}
    # Instructors: admins of the executor service (deploy/exec_service_config.py: admin_groups).
    c.JupyterHub.load_groups = {"instructors": {"users": ["instructor"]}}


def ensure_system_user(spawner):
    """Makes the student's system user and a home only they can open, before their first start.

    Homes live in a volume: a user whose home outlived the container gets its owner's uid back.
    """
    name = spawner.user.name
    home = os.path.join("/home", name)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        command = ["useradd", "--shell", "/bin/bash", "--user-group", "--home-dir", home]
        if os.path.isdir(home):
            command += ["--no-create-home", "--uid", str(os.stat(home).st_uid)]
        else:
            command += ["--create-home"]
        subprocess.run([*command, name], check=True, capture_output=True, timeout=30)
        entry = pwd.getpwnam(name)
    if entry.pw_uid < 1000:
        raise ValueError(f"{name!r} is a system account of the hub's container; it cannot log in")
    os.chmod(entry.pw_dir, 0o700)


c.JupyterHub.spawner_class = "localprocess"
c.Spawner.pre_spawn_hook = ensure_system_user
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
# Remote mode: the extension forwards every run, through the hub's proxy, to the service with the
# user's token. HUB_INTERNAL_URL is how user servers reach the proxy (docs/hub.md, section 2):
# here the hub container's name; under DockerSpawner the hub container's name on its network,
# under KubeSpawner (z2jh) http://proxy-public.
HUB_INTERNAL_URL = os.environ["HUB_INTERNAL_URL"].rstrip("/")
c.Spawner.environment = {
    "JUPYTER_EXEC_SERVICE_URL": f"{HUB_INTERNAL_URL}/services/exec/api/exec/v1/",
}
c.Spawner.args = ["--ExecExtApp.backend=remote"]

# The service, and who may call it: every user, and their servers' tokens (which kernels inherit
# as JUPYTERHUB_API_TOKEN), so that the extension can forward with the user's identity.
c.JupyterHub.services = [{
    "name": "exec",
    "url": "http://exec-service:10101",
    "api_token": os.environ["EXEC_SERVICE_TOKEN"],
    "display": False,
}]
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", "access:services!service=exec"]},
    # The executor service asks the hub which group (instructors) a caller is in.
    {"name": "exec-service", "services": ["exec"],
     "scopes": ["read:users:groups", "read:roles:users"]},
]
c.Spawner.server_token_scopes = [
    "access:servers!server", "users:activity!user", "access:services!service=exec",
]
