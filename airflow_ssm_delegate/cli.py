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
    from airflow_ssm_delegate.documents.lint import ERROR, SEVERITIES, has_failures, lint_file

    findings = [finding for path in args.files for finding in lint_file(path)]
    if args.errors_only:
        findings = [finding for finding in findings if finding.severity == ERROR]
    if args.format == "json":
        print(json.dumps([finding.as_dict() for finding in findings], indent=2))
    else:
        for finding in findings:
            print(finding)
        counts = ", ".join(
            f"{sum(f.severity == severity for f in findings)} {severity}" for severity in SEVERITIES
        )
        checked = len(args.files)
        print(f"{counts} in {checked} file(s)" if findings else f"{checked} file(s) clean", file=sys.stderr)
    return EXIT_FINDINGS if has_failures(findings) else EXIT_OK


def _add_lint(commands: Any) -> None:
    parser = commands.add_parser(
        "lint",
        help="validate runbooks offline (schema 0.3)",
        description="Findings are error (AWS would refuse it), policy (breaks delegated administration) or "
        "warning (probably a mistake). Exit 1 when any error or policy finding is reported.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="runbook files (YAML or JSON)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--errors-only", action="store_true", help="report only error findings")
    parser.set_defaults(handler=_lint)


def _iam(args: argparse.Namespace) -> int:
    from airflow_ssm_delegate.documents.model import RunbookError
    from airflow_ssm_delegate.iam import Scope
    from airflow_ssm_delegate.iam_compile import compile_policies
    from airflow_ssm_delegate.policy import DelegationPolicy, PolicyFileError

    if args.role_name or args.pin:
        raise CommandError(
            "--role-name and --pin are gone: the roles and version pins come from the delegation policy "
            "file, so the IAM policy cannot drift from what Airflow enforces. Pass --policy POLICY_FILE "
            "(the file [ssm_delegate] policy_file names)"
        )
    if not args.policy:
        raise CommandError(
            "--policy POLICY_FILE is required: the operator's IAM policy is compiled from the delegation "
            "policy file ([ssm_delegate] policy_file)"
        )
    names = dict(_pair(name, "--name", "FILE=NAME") for name in args.name)
    unknown = sorted(set(names) - set(args.files))
    if unknown:
        raise CommandError(f"--name for {unknown}, which are not among the FILE arguments")
    try:
        compiled = compile_policies(
            DelegationPolicy.from_file(args.policy),
            Scope(account=args.account, region=args.region),
            args.files,
            names,
            args.events_queue_arn,
            administration_role_name=args.administration_role_name,
        )
    except PolicyFileError as exc:
        raise CommandError(str(exc)) from exc
    except RunbookError as exc:
        raise CommandError(f"{exc} (run `airflow-ssm-delegate lint` on the file)") from exc
    except ValueError as exc:  # CompileError, UnresolvablePermissionError
        raise CommandError(str(exc)) from exc
    except OSError as exc:
        raise CommandError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    for gap in compiled.gaps:
        print(f"not enforced by IAM: {gap}", file=sys.stderr)
    for note in _script_notes(args.files):
        print(f"note: {note}", file=sys.stderr)
    print(json.dumps(compiled.policies, indent=2))
    return EXIT_OK


def _script_notes(files: Sequence[str]) -> list[str]:
    from airflow_ssm_delegate.documents.model import load_runbook
    from airflow_ssm_delegate.iam import hand_written_permissions

    return [f"{path}: {note}" for path in files for note in hand_written_permissions(load_runbook(path))]


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
    parser = commands.add_parser(
        "iam", help="the operator's IAM policy compiled from the delegation policy (+ service role's, JSON)"
    )
    parser.add_argument(
        "files", nargs="*", metavar="FILE", help="runbook files: adds the service role's policies"
    )
    parser.add_argument("--policy", metavar="POLICY_FILE", help="the delegation policy file (required)")
    parser.add_argument("--account", required=True, type=_matching(r"\d{12}", "a 12-digit AWS account id"))
    parser.add_argument("--region", required=True, type=_matching(r"[a-z]{2}(-[a-z]+)+-\d", "an AWS region"))
    parser.add_argument(
        "--name",
        action="append",
        default=[],
        metavar="FILE=NAME",
        help="the document name FILE is published under (default: its file stem)",
    )
    parser.add_argument(
        "--events-queue-arn",
        metavar="QUEUE_ARN",
        help="the events queue (the connection's events_queue_url extra): adds sqs:ReceiveMessage and "
        "sqs:DeleteMessage on it for watching by events",
    )
    parser.add_argument(
        "--administration-role-name",
        type=_matching(r"[\w+=,.@-]{1,64}", "an IAM role name"),
        help="the role TargetLocations starts run as (their AutomationAssumeRole), for runbooks whose "
        "fan_out reaches other accounts or regions (default: the runbook's default_role, else "
        "AWS-SystemsManager-AutomationAdministrationRole)",
    )
    # Refused with a pointer to --policy (they were a second source of truth beside the policy file).
    parser.add_argument("--role-name", help=argparse.SUPPRESS)
    parser.add_argument("--pin", action="append", default=[], help=argparse.SUPPRESS)
    parser.set_defaults(handler=_iam)


def _add_aws_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("AWS", "default: the usual AWS environment variables / profile")
    group.add_argument("--endpoint-url", help="e.g. the local runtime, http://127.0.0.1:4566")
    group.add_argument("--region", help="AWS region (default: from the environment or profile)")
    group.add_argument("--profile", help="named profile from the AWS config files")


def _clients(args: argparse.Namespace, *services: str) -> list[Any]:
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        session = boto3.Session(profile_name=args.profile, region_name=args.region)
        if session.region_name is None:
            raise CommandError("no AWS region: pass --region or set AWS_DEFAULT_REGION")
        return [session.client(service, endpoint_url=args.endpoint_url) for service in services]
    except BotoCoreError as exc:
        raise CommandError(str(exc)) from exc


def _aws_errors(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """AWS refusals and connection problems become one-line CommandErrors (exit 2)."""

    def wrapped(args: argparse.Namespace) -> int:
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError

        try:
            return run(args)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise CommandError(
                f"AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message')}"
            ) from exc
        except BotoCoreError as exc:
            raise CommandError(str(exc)) from exc
        except ResponseParserError as exc:  # e.g. moto's HTML 500 page for a call it does not implement
            raise CommandError(
                f"the endpoint sent a response botocore cannot read, typically an HTTP 500 or a call it does "
                f"not implement (moto has no iam:SimulatePrincipalPolicy): {str(exc).splitlines()[0]}"
            ) from exc

    return wrapped


@_aws_errors
def _publish(args: argparse.Namespace) -> int:
    from pathlib import Path

    from airflow_ssm_delegate.documents.publish import PublishError, publish_document

    (ssm,) = _clients(args, "ssm")
    try:
        result = publish_document(ssm, Path(args.file), args.name, args.share)
    except PublishError as exc:
        raise CommandError(str(exc)) from exc
    change = (
        "created" if result.created else "new version" if result.new_version else "unchanged, no new version"
    )
    print(f"{result.name} version {result.version} ({change}); default version set")
    if result.shared_with:
        print(f"shared with {', '.join(result.shared_with)}")
    print(f"sha256 {result.sha256}")
    print(
        f"pin it in the delegation policy:\n  {result.name}:\n    version: '{result.version}'\n"
        f"    sha256: {result.sha256}"
    )
    return EXIT_OK


def _add_publish(commands: Any) -> None:
    parser = commands.add_parser("publish", help="create or update a runbook document, set default, share")
    parser.add_argument("file", metavar="FILE", help="runbook file (YAML or JSON); linted first")
    parser.add_argument("--name", help="document name (default: the file stem)")
    parser.add_argument(
        "--share",
        nargs="+",
        action="extend",  # `--share A B` and `--share A --share B` both share with A and B
        default=[],
        metavar="ACCOUNT",
        help="12-digit account ids",
    )
    _add_aws_options(parser)
    parser.set_defaults(handler=_publish)


@_aws_errors
def _preflight(args: argparse.Namespace) -> int:
    from airflow_ssm_delegate.documents.model import RunbookError
    from airflow_ssm_delegate.documents.preflight import format_table, preflight

    ssm, iam, sts = _clients(args, "ssm", "iam", "sts")
    try:
        checks = preflight(
            ssm=ssm,
            iam=iam,
            sts=sts,
            document_name=args.document,
            role_arn=args.role,
            document_version=args.version,
        )
    except RunbookError as exc:
        raise CommandError(f"document {args.document} is not a valid runbook: {exc}") from exc
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    print(format_table(checks))
    denied = [check for check in checks if not check.allowed]
    print(
        f"{len(denied)} of {len(checks)} check(s) denied" if denied else f"all {len(checks)} checks allowed",
        file=sys.stderr,
    )
    return EXIT_FINDINGS if denied else EXIT_OK


def _add_preflight(commands: Any) -> None:
    parser = commands.add_parser(
        "preflight", help="simulate IAM: may the role run the runbook, may you pass it"
    )
    parser.add_argument("--document", required=True, help="document name or ARN")
    parser.add_argument("--role", required=True, help="service role ARN the runbook will run as")
    parser.add_argument("--version", help="document version (default: the default version)")
    _add_aws_options(parser)
    parser.set_defaults(handler=_preflight)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airflow-ssm-delegate",
        description="Author and administrator tools for SSM Automation runbooks run from Airflow.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(commands)
    return parser


_COMMANDS: list[Callable[[Any], None]] = [_add_lint, _add_iam, _add_publish, _add_preflight]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except CommandError as exc:
        print(f"airflow-ssm-delegate {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
