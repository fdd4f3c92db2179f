"""The deployment files agree with the app: ports, probes, health checks and commands."""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import typer
import yaml

from dualcam_rt.cli import app as cli_app
from dualcam_rt.server.app import create_app

ROOT = Path(__file__).resolve().parent.parent
PORT = 8000


@pytest.fixture(scope="module")
def routes() -> set[str]:
    """The HTTP routes the app really serves (from its OpenAPI schema)."""
    return set(create_app(live=False).openapi()["paths"])


def check_command(argv: list[str]) -> dict[str, str]:
    """Parse a ``dualcam-rt ...`` command line with the real CLI; its options come back."""
    assert argv[0].endswith("dualcam-rt"), argv
    group = typer.main.get_command(cli_app)
    command = group.commands[argv[1]]
    ctx = command.make_context(argv[1], list(argv[2:]), resilient_parsing=False)  # raises on unknown options
    return {k: v for k, v in ctx.params.items() if v is not None}


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_serves_on_the_exposed_port_and_checks_a_real_route(routes):
    text = dockerfile()
    cmd = yaml.safe_load(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    assert check_command(cmd)["port"] == PORT and cmd[1] == "serve"
    assert re.search(r"^EXPOSE (\d+)$", text, re.M).group(1) == str(PORT)
    assert f"DUALCAM_PORT={PORT}" in text and "DUALCAM_HOST=0.0.0.0" in text
    health = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", text.split("HEALTHCHECK")[1])
    assert int(health.group(1)) == PORT and health.group(2) in routes


def test_dockerfile_variants_are_the_pyproject_extras():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    text = dockerfile()
    assert re.search(r"^ARG VARIANT=cpu$", text, re.M)
    assert '"/src[${VARIANT},audio]"' in text
    assert {"cpu", "gpu", "audio"} <= set(extras)
    assert any("onnxruntime-gpu" in d for d in extras["gpu"]) and any("cupy" in d for d in extras["gpu"])
    assert "nvidia/cuda" in text  # the documented GPU base


def test_compose_wires_the_service_to_the_simulated_sensor(routes):
    compose = yaml.safe_load((ROOT / "deploy/compose.yaml").read_text())["services"]
    service, sensor = compose["service"], compose["sensor"]
    serve = check_command(service["command"])
    assert service["command"][1] == "serve"
    host_port, container_port = service["ports"][0].split(":")
    assert int(container_port) == serve["port"] == PORT
    sim = check_command(sensor["command"])
    assert sensor["command"][1] == "simulate-device"
    device = urlsplit(service["environment"]["DUALCAM_DEVICE_URI"])
    assert device.scheme == "dualcam" and device.hostname == "sensor" and device.port == sim["port"]
    assert str(sim["port"]) in sensor["expose"]
    probe = urlsplit(re.search(r"http://[^']+", " ".join(service["healthcheck"]["test"])).group(0))
    assert probe.port == PORT and probe.path in routes


def test_kubernetes_probes_and_ports_match_the_app(routes):
    docs = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy/k8s/dualcam-rt.yaml").read_text())}
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert check_command(container["command"])["port"] == PORT
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": PORT}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] in routes
    assert {"/healthz", "/readyz"} <= routes
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] in ports
    assert docs["Service"]["spec"]["selector"] == docs["Deployment"]["spec"]["selector"]["matchLabels"]
    assert "nvidia.com/gpu" in (ROOT / "deploy/k8s/dualcam-rt.yaml").read_text()  # the optional GPU line


def test_systemd_unit_runs_serve_with_valid_options():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string((ROOT / "deploy/systemd/dualcam-rt.service").read_text())
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[1] == "serve" and check_command(argv)["port"] == PORT
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    env = unit["Service"]["Environment"]
    assert "DUALCAM_" in env


def test_a_command_with_an_unknown_option_is_caught():
    with pytest.raises(Exception, match="No such option"):
        check_command(["dualcam-rt", "serve", "--prot", "8000"])


def test_an_installed_package_has_the_service_and_its_dashboard():
    """The Docker image installs the package (not editable): every service module must be found."""
    from setuptools import find_packages

    packages = set(find_packages(str(ROOT), include=["dualcam_rt*", "firmware_io*"]))
    assert {"dualcam_rt.server", "dualcam_rt.inference", "dualcam_rt.bench", "dualcam_rt.cli"} <= packages
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "server/static/*" in package_data["dualcam_rt"]
    assert {p.name for p in (ROOT / "dualcam_rt/server/static").iterdir()} >= {
        "index.html",
        "dashboard.js",
        "dashboard.css",
    }
