"""LocalAutomationServer life cycle and the ``ssm-delegate-local`` console."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from airflow_ssm_delegate.local.cli import build_parser
from airflow_ssm_delegate.local.server import LocalAutomationServer
from tests.fixtures.local_runtime import client_for

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

STRANGER = {"aws_access_key_id": "AKIASTRANGER00000000", "aws_secret_access_key": "s" * 40}


def test_admin_credentials_are_an_iam_user_allowed_everything(boto_client: Callable[..., Any]) -> None:
    assert boto_client("sts").get_caller_identity()["Arn"] == "arn:aws:iam::123456789012:user/local-admin"
    policy = boto_client("iam").get_user_policy(UserName="local-admin", PolicyName="AdministratorAccess")
    assert policy["PolicyDocument"]["Statement"] == [{"Effect": "Allow", "Action": "*", "Resource": "*"}]


def test_admin_keys_survive_a_reset_of_motos_state_by_someone_else(
    local_server: LocalAutomationServer, boto_client: Callable[..., Any]
) -> None:
    from moto import mock_aws

    keys = local_server.admin_credentials
    with mock_aws():  # resets every moto backend of this process on entry and exit
        pass
    assert local_server.admin_credentials == keys
    assert boto_client("sts").get_caller_identity()["Arn"].endswith(":user/local-admin")


def test_a_second_server_in_the_same_process_is_refused(local_server: LocalAutomationServer) -> None:
    second = LocalAutomationServer()
    with pytest.raises(RuntimeError, match="already running in this process"):
        second.start()
    second.stop()  # stopping the one that never ran must not reset the running one
    assert client_for(local_server, "sts").get_caller_identity()["Arn"].endswith(":user/local-admin")


def test_the_server_is_importable_from_the_local_package() -> None:
    from airflow_ssm_delegate import local

    assert local.LocalAutomationServer is LocalAutomationServer
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = local.Nope


@pytest.mark.parametrize("port", [-1, 65536, "4566", 1.5, True])
def test_a_bad_port_is_refused_when_constructed(port: Any) -> None:
    with pytest.raises(ValueError, match=r"port must be a TCP port number 0-65535 \(0 picks a free one\)"):
        LocalAutomationServer(port=port)


def test_endpoint_before_start_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="call start"):
        _ = LocalAutomationServer().endpoint_url


def test_without_iam_enforcement_everyone_is_allowed(
    local_server: LocalAutomationServer, boto_client: Callable[..., Any], new_role: Callable[..., str]
) -> None:
    untrusting = new_role(
        [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    )
    with pytest.raises(ClientError):
        boto_client("ssm", STRANGER).list_documents()
    local_server.enforce_iam = False
    try:
        boto_client("ssm", STRANGER).list_documents()
        keys = local_server.authorizer.assume_service_role(untrusting, "exec-without-iam")
    finally:
        local_server.enforce_iam = True
    assert keys.session_token  # credentials are still minted
    with pytest.raises(ClientError):
        boto_client("ssm", STRANGER).list_documents()


STOP_AND_RESTART = textwrap.dedent(
    """
    import json, socket, boto3
    from airflow_ssm_delegate.local.server import LocalAutomationServer

    def iam(server):
        return boto3.client("iam", endpoint_url=server.endpoint_url, region_name=server.region,
                            **server.admin_credentials)

    first = LocalAutomationServer().start()
    port = int(first.endpoint_url.rsplit(":", 1)[1])
    iam(first).create_user(UserName="leftover")
    first.stop()
    probe = socket.socket(); probe.bind(("127.0.0.1", port)); probe.close()  # the port is free
    with LocalAutomationServer(port=port) as second:
        users = [u["UserName"] for u in iam(second).list_users()["Users"]]
    print(json.dumps({"users": users}))
    """
)


def test_stop_resets_state_and_frees_the_port() -> None:
    """Run in a child process: this one already has the session's server."""
    done = subprocess.run(
        [sys.executable, "-c", STOP_AND_RESTART], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"users": ["local-admin"]}


def read_banner(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("Serving until"):
            return lines
    raise AssertionError(f"the console ended before serving: {lines}")


def test_console_serves_until_sigterm(tmp_path: Path) -> None:
    credentials_file = tmp_path / "admin.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_ssm_delegate.local.cli",
            "--port",
            "0",
            "--time-scale",
            "60",
            "--admin-credentials-file",
            str(credentials_file),
            "--account",
            "111122223333",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = read_banner(process)
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in banner if line.startswith("export ")
        )
        sts = boto3.client(
            "sts",
            endpoint_url=exports["AWS_ENDPOINT_URL"],
            region_name=exports["AWS_DEFAULT_REGION"],
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
        )
        assert sts.get_caller_identity()["Arn"].endswith(":user/local-admin")
        assert any("IAM: enforced" in line for line in banner)
        assert any("time scale: 60" in line for line in banner)
        written = json.loads(credentials_file.read_text())
        assert written["aws_access_key_id"] == exports["AWS_ACCESS_KEY_ID"]
        assert written["endpoint_url"] == exports["AWS_ENDPOINT_URL"]
        assert stat.S_IMODE(os.stat(credentials_file).st_mode) == 0o600
        other = boto3.client(
            "sts",
            endpoint_url=exports["AWS_ENDPOINT_URL"],
            region_name=exports["AWS_DEFAULT_REGION"],
            **written["accounts"]["111122223333"],
        )
        assert other.get_caller_identity()["Account"] == "111122223333"  # --account: that account's admin
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped" in out
    port = int(exports["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--time-scale", "0"], "must be positive"),
        (["--time-scale", "inf"], "must be positive"),
        (["--time-scale", "nan"], "must be positive"),
        (["--time-scale", "fast"], "not a number"),
        (["--port", "99999"], "not a TCP port"),
        (["--account", "1234"], "not a 12-digit AWS account id"),
    ],
)
def test_console_rejects_bad_options(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


def test_console_reports_a_busy_port(local_server: LocalAutomationServer) -> None:
    port = local_server.endpoint_url.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-m", "airflow_ssm_delegate.local.cli", "--port", port],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_aws_conn_env_gives_airflow_an_aws_default_connection_to_the_runtime(
    aws_conn_env: Callable[..., dict[str, Any]], new_user: Callable[..., dict[str, str]]
) -> None:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    def caller_arn() -> str:
        hook = AwsBaseHook(aws_conn_id="aws_default", client_type="sts")
        return str(hook.conn.get_caller_identity()["Arn"])

    assert caller_arn().endswith(":user/local-admin")
    aws_conn_env(new_user([], prefix="airflow-operator"))
    assert ":user/airflow-operator-" in caller_arn()
