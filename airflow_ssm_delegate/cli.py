"""``airflow-ssm-delegate``: the author's and administrator's tools (lint, iam, publish, preflight).

Exit codes: 0 fine, 1 the check found problems (lint errors, denied permissions), 2 the command could
not run (bad arguments, unreadable file, AWS error) — always with a one-line message, never a traceback.
"""

from __future__ import annotations

import argparse
import json
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
        print(f"{len(findings)} problem(s) in {checked} file(s)" if findings else f"{checked} file(s) clean",
              file=sys.stderr)  # fmt: skip
    return EXIT_FINDINGS if findings else EXIT_OK


def _add_lint(commands: Any) -> None:
    parser = commands.add_parser("lint", help="validate runbooks offline (schema 0.3)")
    parser.add_argument("files", nargs="+", metavar="FILE", help="runbook files (YAML or JSON)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(handler=_lint)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airflow-ssm-delegate",
        description="Author and administrator tools for SSM Automation runbooks run from Airflow.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(commands)
    return parser


_COMMANDS: list[Callable[[Any], None]] = [_add_lint]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except CommandError as exc:
        print(f"airflow-ssm-delegate {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
