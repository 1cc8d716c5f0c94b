"""The Kubernetes deployment (deploy/k8s): rendered, validated, and held to its security rules.

No cluster runs here. What is checked: every manifest kustomize would apply is a valid object of
the Kubernetes API (the OpenAPI schemas packaged by ``kubernetes-validate``, strict: an unknown
field fails) for the oldest and newest versions the z2jh chart supports; the z2jh values, merged
onto the chart's defaults as ``helm --values`` does, are valid for the chart's own schema; the
executor's pod, given the environment Kubernetes would give it, configures the service as meant;
the balancer's HAProxy configuration passes ``haproxy -c``; and the rules the deployment exists
for hold (only the executor's pods get the Docker socket, students' pods reach only the hub and
its proxy, no secret is written in a manifest).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from jupyter_exec_ext.server.handlers import NAMESPACE

from ..conftest import require

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
Z2JH = Path(__file__).parent / "z2jh"
#: The oldest and newest Kubernetes the pinned z2jh chart (4.4.0, kubeVersion >=1.28) runs on that
#: kubernetes-validate has schemas for.
KUBERNETES_VERSIONS = ["1.28.0", "1.33.0"]
SECRET_NAME = "jupyter-exec"
SECRET_KEYS = {"hub-api-token", "redis-url", "db-url", "cache-secret"}
HEALTH_PATH = f"/services/exec/{NAMESPACE}/health"


def render() -> list[dict]:
    """The objects ``kubectl apply -k deploy/k8s`` would apply (the kustomization only lists files)."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert set(kustomization) == {"apiVersion", "kind", "resources"}, (
        "the kustomization grew transformers: render them here too"
    )
    objects = []
    for name in kustomization["resources"]:
        objects += [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    return objects


def find(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def pod_specs(objects: list[dict]) -> dict[str, dict]:
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")
    }


def helm_merge(base: dict, override: dict) -> dict:
    """Helm's merge of ``--values`` onto the chart's defaults: dictionaries merge, the rest replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def z2jh_values() -> dict:
    return yaml.safe_load((K8S / "z2jh-values.yaml").read_text())


# -- rendering and schemas ---------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_a_valid_kubernetes_object(version: str) -> None:
    objects = render()
    assert {o["kind"] for o in objects} >= {
        "Namespace",
        "Deployment",
        "Service",
        "NetworkPolicy",
        "ConfigMap",
        "ServiceAccount",
    }
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_validator_refuses_what_a_cluster_would_refuse() -> None:
    # The check above can fail: a misspelt field, or a wrong type, is refused.
    deployment = copy.deepcopy(find(render(), "Deployment", "jupyter-exec"))
    deployment["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    deployment = copy.deepcopy(find(render(), "Deployment", "jupyter-exec"))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_z2jh_values_are_valid_for_the_chart() -> None:
    schema = yaml.safe_load((Z2JH / "values.schema.yaml").read_text())
    defaults = yaml.safe_load((Z2JH / "values.yaml").read_text())
    merged = helm_merge(defaults, z2jh_values())
    jsonschema.Draft7Validator(schema).validate(merged)
    # ...and the schema refuses a misplaced key, so the check above means something.
    wrong = helm_merge(merged, {"singleuser": {"networkPolicies": {"enabled": True}}})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(wrong)


# -- what the deployment is for ----------------------------------------------------------------


def test_only_the_executors_pods_get_the_docker_socket() -> None:
    objects = render()
    holders = {
        name
        for name, spec in pod_specs(objects).items()
        for volume in spec.get("volumes", [])
        if "docker.sock" in json.dumps(volume.get("hostPath", {}))
    }
    assert holders == {"jupyter-exec"}
    assert "docker.sock" not in (K8S / "z2jh-values.yaml").read_text().replace("Docker socket", "")
    executor = pod_specs(objects)["jupyter-exec"]
    # On its own labelled, tainted nodes, one replica per node (one engine each), no API token.
    assert executor["nodeSelector"] == {"jupyter-exec-ext/executor": "true"}
    assert {
        "key": "jupyter-exec-ext/executor",
        "operator": "Equal",
        "value": "true",
        "effect": "NoSchedule",
    } in executor["tolerations"]
    anti = executor["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    assert executor["automountServiceAccountToken"] is False
    deployment = find(objects, "Deployment", "jupyter-exec")
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    # The namespace that allows the hostPath is the executor's own, never z2jh's.
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {
        "jupyter-exec"
    }
    namespace = find(objects, "Namespace", "jupyter-exec")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_no_secret_is_written_in_a_manifest() -> None:
    for name, spec in pod_specs(render()).items():
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            for env in container.get("env", []):
                if re.search(r"TOKEN|SECRET|PASSWORD|_URL$", env["name"]) and "value" in env:
                    # A URL in plain text is an address without credentials.
                    assert env["name"].endswith("_URL") and "@" not in env["value"], (
                        f"{name}: {env['name']} is written in the manifest"
                    )
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == SECRET_NAME and ref["key"] in SECRET_KEYS
    assert "apiToken" not in json.dumps(z2jh_values()["hub"]["services"])
    # The keys the documentation tells the admin to create are the ones the pods read.
    comment = (K8S / "executor.yaml").read_text()
    assert set(re.findall(r"--from-literal=([a-z-]+)=", comment)) == SECRET_KEYS


def test_students_pods_reach_only_the_hub_and_its_proxy() -> None:
    policy = z2jh_values()["singleuser"]["networkPolicy"]
    assert policy["enabled"] is True and policy["egress"] == []
    # z2jh adds the hub (8081) and the proxy (8000) itself; everything else is closed but DNS.
    assert {k for k, allowed in policy["egressAllowRules"].items() if allowed} == {
        "dnsPortsKubeSystemNamespace"
    }
    defaults = yaml.safe_load((Z2JH / "values.yaml").read_text())
    assert set(policy["egressAllowRules"]) == set(
        defaults["singleuser"]["networkPolicy"]["egressAllowRules"]
    ), "a rule is left at its default"
    env = z2jh_values()["singleuser"]["extraEnv"]
    assert env["JUPYTER_EXEC_SERVICE_URL"] == f"http://proxy-public/services/exec/{NAMESPACE}/"
    assert z2jh_values()["hub"]["config"]["KubeSpawner"]["args"] == ["--ExecExtApp.backend=remote"]


def test_the_replicas_take_requests_only_from_the_balancer() -> None:
    objects = render()
    executor = find(objects, "NetworkPolicy", "jupyter-exec")
    assert executor["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "jupyter-exec"
    }
    assert set(executor["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    [rule] = executor["spec"]["ingress"]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "jupyter-exec-balancer"}}}
    ]
    balancer = find(objects, "NetworkPolicy", "jupyter-exec-balancer")
    [rule] = balancer["spec"]["ingress"]
    assert {
        json.dumps(peer["podSelector"]["matchLabels"], sort_keys=True) for peer in rule["from"]
    } == {
        json.dumps({"app": "jupyterhub", "component": c}, sort_keys=True) for c in ("proxy", "hub")
    }
    # The hub lets the replicas ask its API (z2jh's hub policy admits nobody from elsewhere).
    [hub_rule] = z2jh_values()["hub"]["networkPolicy"]["ingress"]
    assert hub_rule["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "jupyter-exec"
    }
    # The hub's service points at the balancer's Service, on its port.
    service = find(objects, "Service", "jupyter-exec")
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "jupyter-exec-balancer"}
    url = z2jh_values()["hub"]["services"]["exec"]["url"]
    assert (
        url
        == f"http://jupyter-exec.jupyter-exec.svc.cluster.local:{service['spec']['ports'][0]['port']}"
    )


def test_every_container_asks_for_resources_and_probes_the_real_health_route() -> None:
    specs = pod_specs(render())
    for name, spec in specs.items():
        for container in spec["containers"] + spec.get("initContainers", []):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), f"{name}/{container['name']}"
            assert "memory" in resources["limits"], f"{name}/{container['name']}"
    service = specs["jupyter-exec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        assert service[probe]["httpGet"]["path"] == HEALTH_PATH
    balancer_cfg = find(render(), "ConfigMap", "jupyter-exec-balancer")["data"]["haproxy.cfg"]
    assert f"http-check send meth GET uri {HEALTH_PATH} " in balancer_cfg


def pod_environment(container: dict, node_name: str) -> dict[str, str]:
    """The environment Kubernetes gives ``container``: literals, ``$(VAR)`` expanded, and a
    stand-in for each reference (field or Secret)."""
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), item["value"]
            )
        elif "fieldRef" in item["valueFrom"]:
            assert item["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
            env[item["name"]] = node_name
        else:
            env[item["name"]] = "secret:" + item["valueFrom"]["secretKeyRef"]["key"]
    return env


def test_the_executors_pod_configures_the_service_as_meant(tmp_path: Path) -> None:
    objects = render()
    container = pod_specs(objects)["jupyter-exec"]["containers"][0]
    config = tmp_path / "exec_service_config.py"
    config.write_text(
        find(objects, "ConfigMap", "jupyter-exec-config")["data"]["exec_service_config.py"]
    )
    env = pod_environment(container, "node-a")
    env["DOCKER_EXECUTOR_REDIS_URL"] = "redis://:pw@redis.example:6379/0"
    env["DOCKER_EXECUTOR_DB_URL"] = "postgresql+psycopg://exec:pw@db.example:5432/gradebook"
    argv = [
        a.replace("/etc/jupyter-exec/exec_service_config.py", str(config))
        for a in container["command"][1:]
    ]
    probe = (
        "import json, sys\n"
        "from jupyter_exec_ext.server.service import ExecServiceApp\n"
        "app = ExecServiceApp()\n"
        "app.initialize(sys.argv[1:])\n"
        "cfg = app.sandbox_config()\n"
        "print(json.dumps({'ip': app.ip, 'port': app.port, 'base_url': app.base_url,\n"
        "  'exercises': app.exercises_dir, 'redis': app.redis_url, 'db': app.db_url,\n"
        "  'secret': app.cache_secret, 'shared': app.shared_state_url,\n"
        "  'runs': app.max_concurrent_runs,\n"
        "  'per_user': app.max_runs_per_user, 'admins': list(app.admin_groups),\n"
        "  'owner': cfg.owner, 'image': cfg.image}))\n"
    )
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DOCKER_EXECUTOR_", "JUPYTERHUB_", "JUPYTER_EXEC"))
    }
    done = subprocess.run(
        [sys.executable, "-c", probe, *argv],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "http")
    assert (seen["ip"], seen["port"]) == ("0.0.0.0", port)
    assert seen["base_url"] == "/services/exec/"
    assert seen["exercises"] == "/srv/exercises"
    assert seen["redis"] == env["DOCKER_EXECUTOR_REDIS_URL"]
    # The replicas share their run caps and submission limits (docs/hub.md, "More than one machine").
    assert seen["shared"] == "secret:redis-url"
    assert seen["db"] == env["DOCKER_EXECUTOR_DB_URL"]
    assert seen["secret"] == "secret:cache-secret"
    assert (seen["runs"], seen["per_user"], seen["admins"]) == (8, 2, ["instructors"])
    # Each replica owns its node's containers under the node's name.
    assert seen["owner"] == "exec-node-a"
    assert seen["image"] == env["DOCKER_EXECUTOR_IMAGE"]


def test_the_balancers_haproxy_configuration_is_accepted(tmp_path: Path) -> None:
    haproxy = shutil.which("haproxy")
    require(haproxy is not None, "haproxy is not installed (scripts/provision.sh installs it)")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(find(render(), "ConfigMap", "jupyter-exec-balancer")["data"]["haproxy.cfg"])
    done = subprocess.run(
        [haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # A broken configuration is refused, so the check above can fail.
    cfg.write_text(cfg.read_text().replace("balance leastconn", "balance fewest"))
    assert (
        subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, timeout=60).returncode
        != 0
    )
