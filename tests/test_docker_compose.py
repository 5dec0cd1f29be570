"""docker-compose.yaml is consistent and runs only commands that exist (no Docker engine here: PyYAML).

Checks what ``docker compose config`` would, plus what it cannot: that every Airflow subcommand, console
script, module and Celery app the stack runs exists in the installed package and Airflow.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from importlib.metadata import entry_points, version
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_ssm_delegate.examples import AUTOMATION_POOL, FLEET_ACCOUNTS, pool_set_command
from airflow_ssm_delegate.local import story

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
}
INIT_SCRIPT: str = SERVICES["airflow-init"]["command"][-1]


def _init_lines(prefix: str) -> list[str]:
    """Lines of airflow-init's script starting with ``prefix`` (backslash continuations joined)."""
    joined = INIT_SCRIPT.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip().startswith(prefix)]


def _compose_shell(text: str) -> str:
    """What the container's shell sees: ``${VAR:-default}`` as its default, ``$$`` as ``$``, a hostname."""
    text = re.sub(r"(?<!\$)\$\{\w+:-([^}]*)\}", r"\1", text)
    return text.replace("$${HOSTNAME}", "worker-1").replace("$$", "$")


def _argv(line: str) -> list[str]:
    """A shell command line as argv, without output redirections."""
    return [token for token in shlex.split(_compose_shell(line)) if not token.startswith((">", "2>"))]


VOLUME = re.compile(r"^(?P<source>\$\{[^}]*\}[^:]*|[^:$]+):(?P<target>/[^:]*)(?::(?P<mode>ro|rw))?$")


def test_has_the_official_shape_plus_the_local_runtime() -> None:
    assert set(SERVICES) >= {
        "postgres",
        "redis",
        "airflow-init",
        "ssm-delegate-local",
        *AIRFLOW_SERVICES,
    }
    assert "x-airflow-common" in COMPOSE
    for name, command in AIRFLOW_SERVICES.items():
        assert SERVICES[name]["command"] == command, name
        assert SERVICES[name]["image"] == COMPOSE["x-airflow-common"]["image"], name
        assert SERVICES[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name


def test_the_image_build_installs_this_package_on_the_tested_airflow() -> None:
    build = COMPOSE["x-airflow-common"]["build"]
    assert SERVICES["ssm-delegate-local"]["build"] == build
    assert (ROOT / build["context"]).is_dir()
    dockerfile = build["dockerfile_inline"]
    airflow_version = version("apache-airflow")
    assert re.search(rf"^FROM apache/airflow:{re.escape(airflow_version)}-python3\.\d+$", dockerfile, re.M)
    assert f'"apache-airflow=={airflow_version}"' in dockerfile  # pip must not move Airflow
    copies = [line.split()[2:-1] for line in dockerfile.splitlines() if line.startswith("COPY")]
    sources = [source for copy in copies for source in copy]
    assert "airflow_ssm_delegate" in sources
    for source in sources:
        assert (ROOT / build["context"] / source).exists(), f"COPY source {source} missing"
    assert ".venv" not in sources and "." not in sources  # the build context stays small
    assert re.search(r'pip install .*"/opt/ssm-delegate\[local\]"', dockerfile)


def test_every_service_has_an_image_and_a_working_healthcheck_shape() -> None:
    for name, service in SERVICES.items():
        assert service.get("image"), f"{name} has no image"
        if name == "airflow-init":
            assert "healthcheck" not in service
            continue
        test = service["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"} and len(test) >= 2, name


def test_depends_on_names_real_services_with_satisfiable_conditions() -> None:
    graph: dict[str, set[str]] = {}
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        graph[name] = set(depends)
        for target, spec in depends.items():
            assert target in SERVICES, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits for {target} to be healthy"
            elif condition == "service_completed_successfully":
                assert SERVICES[target].get("restart") is None, f"{target} must run once"
            else:
                assert condition == "service_started", condition

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"depends_on cycle: {' -> '.join((*path, node))}"
        for nxt in graph[node]:
            visit(nxt, (*path, node))

    for service_name in graph:
        visit(service_name, ())
    for name in AIRFLOW_SERVICES:
        assert SERVICES[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert SERVICES["airflow-init"]["depends_on"]["ssm-delegate-local"]["condition"] == "service_healthy"


def test_volumes_are_declared_and_bind_sources_exist() -> None:
    declared = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            parsed = VOLUME.match(volume)
            assert parsed, f"{name}: cannot read volume {volume!r}"
            source = parsed.group("source")
            if source.startswith("${AIRFLOW_PROJ_DIR:-.}/"):
                assert source.endswith(("/dags", "/logs", "/config", "/plugins")), volume
            else:
                assert source in declared, f"{name} mounts undeclared volume {source}"
    assert (ROOT / "dags").is_dir()
    mounts = COMPOSE["x-airflow-common"]["volumes"]
    assert "${AIRFLOW_PROJ_DIR:-.}/dags:/opt/airflow/dags" in mounts


def test_environment_points_airflow_at_the_stack_services() -> None:
    env = COMPOSE["x-airflow-common"]["environment"]
    assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert "@postgres/" in env["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert (
        env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        and "@redis:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
    )
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert "8080:8080" in SERVICES["airflow-apiserver"]["ports"]
    postgres_env = SERVICES["postgres"]["environment"]
    user, password, database = (postgres_env[f"POSTGRES_{k}"] for k in ("USER", "PASSWORD", "DB"))
    assert f"{user}:{password}@postgres/{database}" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    # The policy file Airflow enforces is the one airflow-init's story provisioning writes.
    policy_env = env["AIRFLOW__SSM_DELEGATE__POLICY_FILE"]
    policy_default = re.fullmatch(r"\$\{SSM_DELEGATE_POLICY_FILE:-(.+)\}", policy_env)
    assert policy_default
    story_line = _init_lines("/entrypoint python -m airflow_ssm_delegate.local.story")
    output_dir = shlex.split(story_line[0])[shlex.split(story_line[0]).index("--output-dir") + 1]
    assert policy_default.group(1) == f"{output_dir}/{story.POLICY_FILE_NAME}"
    assert output_dir.startswith("/opt/airflow/config/")  # on the shared config mount


def test_the_local_runtime_is_where_the_story_is_provisioned() -> None:
    local = SERVICES["ssm-delegate-local"]
    port = int(shlex.split(local["command"])[shlex.split(local["command"]).index("--port") + 1])
    assert f"{port}:{port}" in local["ports"]
    assert f"http://localhost:{port}/" in local["healthcheck"]["test"]
    args = shlex.split(_init_lines("/entrypoint python -m airflow_ssm_delegate.local.story")[0])
    assert args[args.index("--endpoint-url") + 1] == f"http://ssm-delegate-local:{port}"
    credentials = args[args.index("--admin-credentials-file") + 1]
    local_args = shlex.split(local["command"])
    assert local_args[local_args.index("--admin-credentials-file") + 1] == credentials
    local_volume = next(v for v in local["volumes"] if credentials.startswith(v.split(":")[1]))
    assert any(v.startswith(local_volume.split(":")[0] + ":") for v in SERVICES["airflow-init"]["volumes"])
    output_dir = args[args.index("--output-dir") + 1]
    imports = [shlex.split(line) for line in _init_lines("/entrypoint airflow connections import")]
    assert [line[-1] for line in imports] == [f"{output_dir}/{story.CONNECTIONS_FILE_NAME}"]
    variables = [shlex.split(line) for line in _init_lines("/entrypoint airflow variables import")]
    assert [line[-1] for line in variables] == [f"{output_dir}/{story.VARIABLES_FILE_NAME}"]


def test_the_local_runtime_runs_the_fleet_accounts_the_story_sets_up() -> None:
    """Without them the story leaves the fleet out and fleet_patch_maintenance fails at its first location."""
    local_args = shlex.split(SERVICES["ssm-delegate-local"]["command"])
    accounts = [local_args[i + 1] for i, arg in enumerate(local_args) if arg == "--account"]
    assert accounts == list(FLEET_ACCOUNTS)


def test_console_scripts_and_modules_it_runs_exist() -> None:
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    entrypoint = SERVICES["ssm-delegate-local"]["entrypoint"]
    assert entrypoint[:2] == ["/usr/bin/dumb-init", "--"]
    assert entrypoint[2] in scripts
    module, func = scripts[entrypoint[2]].split(":")
    parser_module = __import__(module, fromlist=["build_parser"])
    assert callable(getattr(parser_module, func))
    parser_module.build_parser().parse_args(
        shlex.split(_compose_shell(SERVICES["ssm-delegate-local"]["command"]))
    )
    story_args = shlex.split(_init_lines("/entrypoint python -m airflow_ssm_delegate.local.story")[0])[4:]
    story.build_parser().parse_args(story_args)


def test_the_pool_airflow_init_creates_is_the_one_the_dags_use() -> None:
    pools = _init_lines("/entrypoint airflow pools set")
    assert len(pools) == 1
    assert _argv(pools[0])[1:] == pool_set_command()
    assert AUTOMATION_POOL in pools[0]


def _airflow_command_lines() -> list[list[str]]:
    lines = [shlex.split(command) for command in AIRFLOW_SERVICES.values()]
    for line in _init_lines("/entrypoint airflow "):
        lines.append(_argv(line)[2:])
    for name in ("airflow-dag-processor", "airflow-triggerer"):
        lines.append(_argv(SERVICES[name]["healthcheck"]["test"][1])[1:])
    return lines


@pytest.mark.slow
def test_every_airflow_command_it_runs_parses_in_the_installed_airflow(tmp_path: Path) -> None:
    """Airflow's own CLI parser (with CeleryExecutor, as in the stack) accepts each command line."""
    worker_health = _compose_shell(SERVICES["airflow-worker"]["healthcheck"]["test"][1])
    celery_app = shlex.split(worker_health)[2]
    program = f"""
import json, sys
from airflow.cli.cli_parser import get_parser
parser = get_parser()
for argv in json.loads(sys.argv[1]):
    parser.parse_args(argv)
module, attribute = {celery_app!r}.rsplit(".", 1)
getattr(__import__(module, fromlist=[attribute]), attribute)
"""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    result = subprocess.run(
        [sys.executable, "-c", program, json.dumps(_airflow_command_lines())],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


# The Compose specification's own validator: its JSON schema (compose-spec/compose-spec, Apache-2.0), as
# vendored and released by check-jsonschema (a [test] dependency). Debian 12 has no Compose v2 (`docker
# compose config`); its docker-compose 1.29 predates keys this file uses (build.dockerfile_inline).
def _compose_spec_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_compose_specification_schema_accepts_it() -> None:
    result = _compose_spec_check(ROOT / "docker-compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_specification_schema_names_a_misspelt_service_key(tmp_path: Path) -> None:
    """The validator is strict: a typo in a service (which Compose would reject) is reported by name."""
    broken = tmp_path / "docker-compose.yaml"
    text = (ROOT / "docker-compose.yaml").read_text()
    assert "\n    healthcheck:" in text
    broken.write_text(text.replace("\n    healthcheck:", "\n    healthchek:", 1))
    result = _compose_spec_check(broken)
    assert result.returncode == 1
    assert "'healthchek' was unexpected" in result.stdout
