"""JupyterHub configuration of the hub stack in docker-compose.yml (see docs/hub.md).

The executor service runs in its own container, the only one with the Docker socket; the hub
knows it as an external service. User servers run in the hub container, in remote mode.
"""

import os

c = get_config()  # noqa: F821 (provided by JupyterHub)

c.JupyterHub.bind_url = "http://0.0.0.0:8000"
c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
c.JupyterHub.hub_connect_url = "http://hub:8081"
c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/srv/jupyterhub/jupyterhub_cookie_secret"

# A demo: any plain name and the shared password (no default: DEMO_PASSWORD must be set) log in.
# Use a real authenticator for a course.
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ["DEMO_PASSWORD"]
c.Authenticator.allow_all = True
c.Authenticator.username_pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$"
c.Authenticator.admin_users = {"instructor"}
# Instructors: admins of the executor service (deploy/exec_service_config.py: admin_groups).
c.JupyterHub.load_groups = {"instructors": {"users": ["instructor"]}}

# User servers run as the hub's unprivileged user in this container, which has no Docker socket.
c.JupyterHub.spawner_class = "simple"
c.Spawner.default_url = "/lab"
# Remote mode: the extension forwards every run, through the hub's proxy, to the service with the
# user's token. HUB_INTERNAL_URL is how user servers reach the proxy (docs/hub.md, section 2):
# here the hub container's name; under DockerSpawner the hub container's name on its network,
# under KubeSpawner (z2jh) http://proxy-public. Never 127.0.0.1 unless user servers run on the
# hub's own machine.
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
