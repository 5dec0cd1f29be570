"""``ssm-delegate-local``: run the local Automation runtime in the foreground until SIGINT/SIGTERM.

Prints the endpoint and the bootstrap admin's keys (an ``export AWS_...`` block to paste into a shell);
``--admin-credentials-file`` also writes them as JSON (mode 0600) for provisioning scripts, e.g. the
docker-compose ``airflow-init`` service.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.local.server import LocalAutomationServer

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

DEFAULT_PORT = 4566


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be positive and finite (simulated seconds per wall-clock second)"
        )
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0-65535; 0 picks a free one)")
    return int(text)


def _account_id(text: str) -> str:
    if not (len(text) == 12 and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a 12-digit AWS account id")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssm-delegate-local",
        description="Offline AWS endpoint (moto) that also runs SSM Automation runbooks, with IAM enforced.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--time-scale",
        type=_positive_float,
        default=1.0,
        help="simulated seconds per wall-clock second (3600 = an hour a second; default 1)",
    )
    parser.add_argument(
        "--no-iam", action="store_true", help="allow every request (IAM is enforced as on AWS by default)"
    )
    parser.add_argument(
        "--admin-credentials-file",
        type=Path,
        help="also write the admin's keys to this JSON file (mode 0600)",
    )
    parser.add_argument(
        "--account",
        type=_account_id,
        action="append",
        default=[],
        metavar="ACCOUNT_ID",
        help="another account to provision (a TargetLocations target; repeatable): its bootstrap admin's "
        "keys go into --admin-credentials-file under accounts.ACCOUNT_ID",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser


def _write_credentials(
    path: Path, credentials: dict[str, str], server: LocalAutomationServer, accounts: Sequence[str] = ()
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        **credentials,
        "region_name": server.region,
        "endpoint_url": server.endpoint_url,
    }
    if accounts:
        payload["accounts"] = {account: server.admin_credentials_for(account) for account in accounts}
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(payload, handle, indent=2)


def banner(server: LocalAutomationServer) -> str:
    """What the console prints once the server is up."""
    credentials = server.admin_credentials
    iam = "enforced (as AWS decides it)" if server.enforce_iam else "OFF (--no-iam): every request is allowed"
    return "\n".join(
        [
            f"ssm-delegate-local: AWS services (moto) + SSM Automation on {server.endpoint_url}",
            f"  IAM: {iam}",
            f"  time scale: {server.time_scale:g} simulated second(s) per second",
            f"  admin: arn:aws:iam::{server.account_id}:user/local-admin (inline policy allowing *:*)",
            "",
            f"export AWS_ENDPOINT_URL={server.endpoint_url}",
            f"export AWS_ACCESS_KEY_ID={credentials['aws_access_key_id']}",
            f"export AWS_SECRET_ACCESS_KEY={credentials['aws_secret_access_key']}",
            f"export AWS_DEFAULT_REGION={server.region}",
            "",
            "Serving until Ctrl+C (SIGINT) or SIGTERM.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.WARNING)
    server = LocalAutomationServer(
        host=args.host, port=args.port, time_scale=args.time_scale, enforce_iam=not args.no_iam
    )
    try:
        server.start()
    except OSError as error:
        print(
            f"error: cannot listen on {args.host}:{args.port}: {error} (choose another --port)",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        if args.admin_credentials_file:
            _write_credentials(args.admin_credentials_file, server.admin_credentials, server, args.account)
        print(banner(server), flush=True)
        stop.wait()
    except OSError as error:
        print(f"error: cannot write {args.admin_credentials_file}: {error}", file=sys.stderr)
        return 2
    finally:
        server.stop()
    print("ssm-delegate-local: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
