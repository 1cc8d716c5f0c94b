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

# A demo: any name and the shared password log in. Use a real authenticator for a course.
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ.get("DEMO_PASSWORD", "change-me")
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {"instructor"}

# User servers run as the hub's unprivileged user in this container, which has no Docker socket.
c.JupyterHub.spawner_class = "simple"
c.Spawner.default_url = "/lab"
c.Spawner.environment = {
    # Remote mode: the extension forwards every run to the service with the user's token.
    "JUPYTER_EXEC_SERVICE_URL": "http://exec-service:10101/services/exec/api/exec/v1/",
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
]
c.Spawner.server_token_scopes = [
    "access:servers!server", "users:activity!user", "access:services!service=exec",
]
