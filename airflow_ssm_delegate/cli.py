"""``airflow-ssm-delegate``: the author's and administrator's tools (lint, iam, publish, preflight).

Exit codes: 0 fine, 1 the check found problems (lint errors, denied permissions), 2 the command could
not run (bad arguments, unreadable file, AWS error) — always with a one-line message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class CommandError(Exception):
    """A command cannot run; the message says what is wrong and what to do."""


def _lint(args: argparse.Namespace) -> int:
    from airflow_ssm_delegate.documents.lint import lint_file

    findings = [finding for path in args.files for finding in lint_file(path)]
    if args.format == "json":
        print(json.dumps([finding.as_dict() for finding in findings], indent=2))
    else:
        for finding in findings:
            print(finding)
        checked = len(args.files)
        print(
            f"{len(findings)} problem(s) in {checked} file(s)" if findings else f"{checked} file(s) clean",
            file=sys.stderr,
        )
    return EXIT_FINDINGS if findings else EXIT_OK


def _add_lint(commands: Any) -> None:
    parser = commands.add_parser("lint", help="validate runbooks offline (schema 0.3)")
    parser.add_argument("files", nargs="+", metavar="FILE", help="runbook files (YAML or JSON)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(handler=_lint)


def _iam(args: argparse.Namespace) -> int:
    from airflow_ssm_delegate.documents.actions import UnresolvablePermissionError
    from airflow_ssm_delegate.documents.model import RunbookError
    from airflow_ssm_delegate.iam import generate_policies

    pins = dict(_pair(pin, "--pin", "NAME=VERSION") for pin in args.pin)
    try:
        policies = generate_policies(
            args.files,
            role_name=args.role_name,
            account=args.account,
            region=args.region,
            pinned_versions=pins,
        )
    except (RunbookError, UnresolvablePermissionError) as exc:
        raise CommandError(f"{exc} (run `airflow-ssm-delegate lint` on the file)") from exc
    except OSError as exc:
        raise CommandError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    print(json.dumps(policies, indent=2))
    return EXIT_OK


def _pair(text: str, option: str, shape: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise CommandError(f"{option} {text!r} must look like {shape}")
    return key, value


def _matching(pattern: str, what: str) -> Callable[[str], str]:
    """An argparse type that refuses values not matching ``pattern``, saying what was expected."""

    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}")
        return value

    return check


def _add_iam(commands: Any) -> None:
    parser = commands.add_parser("iam", help="least-privilege IAM policies for the runbooks (JSON)")
    parser.add_argument("files", nargs="+", metavar="FILE", help="runbook files; document name = file stem")
    parser.add_argument("--role-name", required=True, type=_matching(r"[\w+=,.@-]{1,64}", "an IAM role name"))
    parser.add_argument("--account", required=True, type=_matching(r"\d{12}", "a 12-digit AWS account id"))
    parser.add_argument("--region", required=True, type=_matching(r"[a-z]{2}(-[a-z]+)+-\d", "an AWS region"))
    parser.add_argument(
        "--pin",
        action="append",
        default=[],
        metavar="NAME=VERSION",
        help="allow starting only this version of runbook NAME",
    )
    parser.set_defaults(handler=_iam)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airflow-ssm-delegate",
        description="Author and administrator tools for SSM Automation runbooks run from Airflow.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(commands)
    return parser


_COMMANDS: list[Callable[[Any], None]] = [_add_lint, _add_iam]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except CommandError as exc:
        print(f"airflow-ssm-delegate {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
