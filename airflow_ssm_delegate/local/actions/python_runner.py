"""Run a Python handler in a separate process and wait for it without blocking a worker.

Shared by aws:executeScript and aws:invokeLambdaFunction. The handler runs in a child process of this
Python (which has boto3, as AWS's runtimes do) with a clean environment: only the variables the caller
gives (the runtime's endpoint, region and, where AWS gives them, credentials), never this process's own
AWS settings. The step polls the process on the engine's timers, so a running script costs no thread.

Time limit: a script's work (its sleeps, its API calls) takes real time, not simulated time, so its limit
is counted in wall-clock seconds whatever the clock's speed. The child also kills itself after the
limit, and a run nobody waits for any more (execution cancelled) is killed when it is collected.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.local.actions.base import Outcome, StepContext, StepFailure
from airflow_ssm_delegate.local.clients import PERMISSION_ERROR_CODES

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

_HOST = Path(__file__).with_name("script_host.py")
#: What the child inherits from this process: enough to start Python, nothing about AWS.
_INHERITED = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
_ISOLATION = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}
OUTPUT_TAIL = 4096  # characters of the script's stdout/stderr kept for the log and failure message


class PythonRun:
    """One started handler process; ``result()`` is None until it has finished."""

    def __init__(
        self,
        code: Mapping[str, bytes],
        handler: tuple[str, str],
        *,
        events: Any,
        context: Mapping[str, Any],
        environment: Mapping[str, str],
        limit: float,
        lambda_context: bool = False,
    ) -> None:
        self.limit = limit
        self.workdir = Path(tempfile.mkdtemp(prefix="ssm-local-script-"))
        code_dir = self.workdir / "code"
        for name, content in code.items():
            target = (code_dir / name).resolve()
            if not target.is_relative_to(code_dir.resolve()):
                raise StepFailure(f"Code file {name!r} points outside the code directory.", "Verification")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        request: dict[str, Any] = {
            "module": handler[0],
            "function": handler[1],
            "events": events,
            "context": dict(context),
        }
        request.update(limit=limit, **{"lambda": lambda_context})
        (self.workdir / "request.json").write_text(json.dumps(request), encoding="utf-8")
        env = {key: os.environ[key] for key in _INHERITED if key in os.environ}
        env.update(_ISOLATION)
        env.update(environment)
        self._log = (self.workdir / "output.log").open("wb")
        self.process = subprocess.Popen(  # our interpreter running our host file
            [sys.executable, str(_HOST), str(self.workdir)],
            cwd=str(self.workdir),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.started = time.monotonic()
        self._finalizer = weakref.finalize(self, _discard, self.process, self.workdir, self._log)

    def output(self) -> str:
        """The tail of what the script printed (stdout and stderr)."""
        path = self.workdir / "output.log"
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        return text[-OUTPUT_TAIL:]

    def result(self) -> dict[str, Any] | None:
        """The host's result once the process ended; raises StepFailure (timed out) past the limit."""
        path = self.workdir / "result.json"
        overdue = time.monotonic() - self.started > self.limit
        if self.process.poll() is None:
            if not overdue:
                return None
            self.process.kill()
            self.process.wait()
        if overdue and not path.exists():  # stopped by us, or by the host's own alarm before we looked
            output = self.output()
            self._finalizer()
            raise StepFailure(
                f"The script did not finish within {self.limit:g} seconds and was stopped."
                + (f" Output: {output[-500:]}" if output else ""),
                "Action",
                timed_out=True,
            )
        if path.exists():
            result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        else:
            result = {
                "ok": False,
                "errorType": "Runtime.ExitError",
                "errorMessage": f"the process exited with code {self.process.returncode} before returning",
                "stackTrace": [],
            }
        result["log"] = self.output()
        self._finalizer()
        return result


def _discard(process: subprocess.Popen[bytes], workdir: Path, log: Any) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
    log.close()
    shutil.rmtree(workdir, ignore_errors=True)


def run_to_end(run: PythonRun) -> dict[str, Any]:
    """Block until ``run`` ends (for callers that must answer synchronously, e.g. Lambda's Invoke)."""
    while (result := run.result()) is None:
        time.sleep(0.01)
    return result


def wait_for(ctx: StepContext, run: PythonRun, finish: Callable[[dict[str, Any]], Outcome]) -> Outcome:
    """Poll ``run`` on the engine's timers (every ~20 ms of wall time) and ``finish`` with its result."""

    def check(current: StepContext) -> Outcome:
        result = run.result()
        if result is None:
            return current.later(0.0, check)
        return finish(result)

    return check(ctx)


def failure_text(result: Mapping[str, Any]) -> str:
    """``Type: message`` and the last traceback lines of a failed handler, as a step's failure message."""
    trace = "".join(result.get("stackTrace") or []).strip()
    message = f"{result.get('errorType')}: {result.get('errorMessage')}"
    return f"{message}\n{trace}" if trace else message


def failure_type(result: Mapping[str, Any]) -> str:
    """``Permission`` when the handler failed on a denied AWS call (as a step's own call would), else
    ``Action``."""
    return "Permission" if result.get("errorCode") in PERMISSION_ERROR_CODES else "Action"
