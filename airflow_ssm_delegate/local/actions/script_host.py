"""The child process that runs one Python handler (aws:executeScript, aws:invokeLambdaFunction).

Run as ``python script_host.py WORKDIR``: reads ``WORKDIR/request.json`` (``module``, ``function``,
``events``, ``context``, ``limit`` in seconds), imports ``module`` from ``WORKDIR/code`` and calls
``function(events, context)``, then writes ``WORKDIR/result.json``: ``{"ok": true, "payload": ...}`` or
``{"ok": false, "errorType", "errorMessage", "stackTrace"}``. It kills itself with SIGALRM after
``limit`` seconds, so a script left behind by a cancelled execution cannot run on for ever.

Kept free of this package's imports: the child starts with only the standard library and boto3.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def _write(workdir: Path, result: dict[str, Any]) -> None:
    (workdir / "result.json").write_text(json.dumps(result), encoding="utf-8")


def _failure(error: BaseException) -> dict[str, Any]:
    response = getattr(error, "response", None)  # botocore's ClientError carries the API's error code
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return {
        "ok": False,
        "errorType": type(error).__name__,
        "errorMessage": str(error),
        "errorCode": code,
        "stackTrace": traceback.format_exception(error)[-6:],
    }


class LambdaContext:
    """The attributes and method a Lambda handler's ``context`` has (a dict would break handlers)."""

    def __init__(self, fields: dict[str, Any], deadline: float) -> None:
        self.__dict__.update(fields)
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main(workdir: Path) -> int:
    request = json.loads((workdir / "request.json").read_text(encoding="utf-8"))
    signal.alarm(max(1, int(request["limit"]) + 1))
    sys.path.insert(0, str(workdir / "code"))
    context = request["context"]
    if request.get("lambda"):
        context = LambdaContext(context, time.monotonic() + float(request["limit"]))
    try:
        handler = getattr(importlib.import_module(request["module"]), request["function"])
        payload = handler(request["events"], context)
    except BaseException as error:  # the script's own failure is the step's failure message
        _write(workdir, _failure(error))
        return 1
    try:
        _write(workdir, {"ok": True, "payload": payload})
    except (TypeError, ValueError) as error:
        _write(
            workdir,
            {
                "ok": False,
                "errorType": "Runtime.MarshalError",
                "errorMessage": f"Unable to marshal the handler's return value as JSON: {error}",
                "stackTrace": [],
            },
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
