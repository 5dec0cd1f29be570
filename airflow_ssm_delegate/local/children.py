"""Parents that run their work as child executions: the mechanics rate control and TargetLocations share.

A parent starts children one item at a time (a target of ``local.ratecontrol``, a location of
``local.locations``), one ``aws:executeAutomation`` step each; a child's end is recorded on its step (a child
that did not succeed, or could not start, is an error), more are started while the driver's pacing allows and
its error limit holds; StopAutomationExecution cancels the running children, and the parent ends once none is
running: ``Cancelled``, ``CompletedWith{Success,Failure}``, ``Failed`` when any child did not succeed, else
``Success``. What to start next, how a step looks and how a child starts is each driver's own.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from airflow_ssm_delegate.local.actions.base import StepFailure
from airflow_ssm_delegate.local.errors import AutomationApiError

if TYPE_CHECKING:
    from airflow_ssm_delegate.local.engine import AutomationEngine
    from airflow_ssm_delegate.local.execution import Execution, StepRecord

CHILD_ACTION = "aws:executeAutomation"


@dataclass(kw_only=True)
class Progress:
    """A parent's children so far (read and changed under the parent's lock)."""

    launched: int = 0  # items started (or failed to start)
    running: dict[str, StepRecord] = field(default_factory=dict)  # child id -> the parent's step for it
    succeeded: int = 0
    errors: int = 0
    stopping: str | None = None  # "Cancel" / "Complete" once StopAutomationExecution came

    def exceeded(self) -> bool:
        """Whether more errors came than the parent allows (no more children start)."""
        raise NotImplementedError

    def all_launched(self) -> bool:
        """Whether every item has been started (or failed to start)."""
        raise NotImplementedError

    def done(self) -> bool:
        return not self.running and (bool(self.stopping) or self.exceeded() or self.all_launched())


ProgressT = TypeVar("ProgressT", bound=Progress)
ItemT = TypeVar("ItemT")  # what one child is started for: a target, a location


class ChildDriver(ABC, Generic[ProgressT, ItemT]):
    """The engine's parents of one kind: each subclass says what its items are and how a child starts."""

    #: The API a failed start names in its step's FailureDetails.
    START_API = "ssm:StartAutomationExecution"

    def __init__(self, engine: AutomationEngine) -> None:
        self._engine = engine

    # ------------------------------------------------------------------------- what a driver says
    @abstractmethod
    def _progress(self, parent: Execution) -> ProgressT | None:
        """The parent's progress of this kind (None: not a parent of this kind)."""
        raise NotImplementedError

    @abstractmethod
    def _next(self, progress: ProgressT) -> ItemT | None:
        """The next item allowed to start now, counted as launched; None when none may start now."""
        raise NotImplementedError

    @abstractmethod
    def _step(self, parent: Execution, progress: ProgressT, item: ItemT) -> StepRecord:
        """The parent's step for ``item`` (not yet added to the parent)."""
        raise NotImplementedError

    @abstractmethod
    def _start_child(self, parent: Execution, progress: ProgressT, item: ItemT) -> str:
        """Start the child for ``item``; its id, or AutomationApiError when it cannot start."""
        raise NotImplementedError

    @abstractmethod
    def _start_failure(self, item: ItemT, error: AutomationApiError) -> str:
        """The step's failure message when ``item``'s child could not start."""
        raise NotImplementedError

    @abstractmethod
    def _failure_message(self, progress: ProgressT) -> str:
        """The parent's FailureMessage when it ends Failed."""
        raise NotImplementedError

    def _error(self, progress: ProgressT, record: StepRecord) -> None:
        """Count an error of the item whose step is ``record``."""
        progress.errors += 1

    def _started(self, progress: ProgressT, record: StepRecord, child_id: str) -> None:
        """``child_id`` started for the step ``record`` and is running (for drivers that record more)."""

    # ------------------------------------------------------------------------- the engine's seam
    def child_ended(self, parent: Execution, child_id: str) -> None:
        """A child reached a final state (told through the worker pool): record it, start more or end."""
        child = self._engine.get(child_id)  # the child's lock only, never two at once
        with parent.lock:
            progress = self._progress(parent)
            record = progress.running.pop(child_id, None) if progress else None
            if parent.finished or progress is None or record is None:
                return
            status = str(child["AutomationExecutionStatus"])
            if status == "Success":
                progress.succeeded += 1
            else:
                self._error(progress, record)
                reason = child.get("FailureMessage") or "no failure message"
                record.failure = StepFailure(
                    f"Child execution {child_id} ended {status}: {reason}",
                    "Action",
                    {"ExecutionId": [child_id]},
                )
            self._close(record, status)
            self._engine._guard(parent, lambda: self._advance(parent))

    def stop(self, parent: Execution, stop_type: str) -> None:
        """StopAutomationExecution of the parent (its lock held): no more children, running ones cancelled;
        it ends once they have (Cancel: Cancelled; Complete: CompletedWith{Success,Failure})."""
        progress = self._progress(parent)
        assert progress is not None
        if progress.stopping:
            return
        progress.stopping = stop_type
        if stop_type == "Cancel":
            parent.cancelling = True
            parent.status = "Cancelling"
        for child_id in progress.running:
            self._engine._scheduler.submit(functools.partial(self._engine._cancel_quietly, child_id))
        if not progress.running:
            self._conclude(parent)

    # ----------------------------------------------------------------------------------- internals
    def _advance(self, parent: Execution) -> None:
        progress = self._progress(parent)
        assert progress is not None
        while not progress.stopping and not progress.exceeded():
            item = self._next(progress)
            if item is None:
                break
            self._launch(parent, progress, item)
        if progress.done():
            self._conclude(parent)

    def _launch(self, parent: Execution, progress: ProgressT, item: ItemT) -> None:
        record = self._step(parent, progress, item)
        record.owner = parent
        parent.steps.append(record)
        record.started = self._engine.clock.now()
        record.status = "InProgress"
        try:
            child_id = self._start_child(parent, progress, item)
        except AutomationApiError as error:
            self._error(progress, record)
            record.failure = StepFailure(
                self._start_failure(item, error),
                "Permission" if "AccessDenied" in error.code else "Action",
                {"ErrorCode": [error.code], "Api": [self.START_API]},
            )
            self._close(record, "Failed")
            return
        parent.children.append(child_id)
        progress.running[child_id] = record
        self._started(progress, record, child_id)

    def _close(self, record: StepRecord, status: str) -> None:
        record.ended = self._engine.clock.now()
        record.status = status

    def _conclude(self, parent: Execution) -> None:
        progress = self._progress(parent)
        assert progress is not None
        if progress.stopping == "Cancel":
            self._engine._finish(parent, "Cancelled")
        elif progress.stopping == "Complete":
            self._engine._finish(
                parent, "CompletedWithFailure" if progress.errors else "CompletedWithSuccess"
            )
        elif progress.errors:
            self._engine._finish(parent, "Failed", self._failure_message(progress))
        else:
            self._engine._finish(parent, "Success")
