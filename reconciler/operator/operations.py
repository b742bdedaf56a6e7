"""The registry of operator operations: what an operator can ask of the daemon.

Each operation is a frozen dataclass that holds, in one place, its name and help,
its fields (which are its command-line arguments and the fields of its trigger
file, validated the same way for both), and its effect on the plan's inputs:
`apply` turns it into new standing intents, events and branch removals. The CLI
builds its subcommands from `OPERATIONS`, the trigger reader validates with it,
the loop applies it; adding an operation means adding a class to `OPERATIONS`
and teaching the plan what its intent means.

A trigger file of an operation is one JSON object: `type` (the name), `who`,
`why`, `requested_at`, then the operation's own fields in order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Self

from reconciler.model.errors import InputError
from reconciler.model.jobs import JobKey
from reconciler.model.names import is_safe_arch, is_safe_branch, is_safe_name
from reconciler.model.progress import Event, OperationRecord
from reconciler.operator.intents import (
    BranchRemoval,
    DeadJob,
    Hold,
    Intents,
    Pause,
    RebuildRequest,
    RetryGrant,
)
from reconciler.operator.world import World


class OperationError(InputError):
    """An operation's field that is not what was expected; names the file and field."""


# --- fields ------------------------------------------------------------------------


def _text(limit: int) -> Callable[[str, str, Any], str]:
    def check(source: str, name: str, value: Any) -> str:
        if not isinstance(value, str) or not value or len(value) > limit:
            raise OperationError(f"{source}: field {name!r}: expected a non-empty text")
        if "\x00" in value:
            raise OperationError(f"{source}: field {name!r}: NUL characters are not allowed")
        return value

    return check


def _branch(source: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not is_safe_branch(value):
        raise OperationError(f"{source}: field {name!r}: expected a branch name")
    return value


def _arch(source: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or (value and not is_safe_arch(value)):
        raise OperationError(f"{source}: field {name!r}: expected an arch or nothing")
    return value


def _pkgname(source: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not is_safe_name(value):
        raise OperationError(f"{source}: field {name!r}: expected a package name")
    return value


def _job(source: str, name: str, value: Any) -> str:
    try:
        return JobKey.from_job_id(value if isinstance(value, str) else "").job_id
    except ValueError as exc:
        raise OperationError(f"{source}: field {name!r}: expected a job id ({exc})") from exc


# Unix times an operation may carry: from 2000 to the year 3000.
EARLIEST_TIME = 946_684_800.0
LATEST_TIME = 32_503_680_000.0


def is_unix_time(value: Any) -> bool:
    """A finite number of seconds within [EARLIEST_TIME, LATEST_TIME]."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and EARLIEST_TIME <= value <= LATEST_TIME
    )


def _time(source: str, name: str, value: Any) -> float | None:
    if value is not None and not is_unix_time(value):
        raise OperationError(
            f"{source}: field {name!r}: expected a unix time between 2000 and 3000, or nothing;"
            f" got {value!r}"
        )
    return None if value is None else float(value)


def _hours(hours: float, at: float) -> float | None:
    """The unix time `hours` after `at` (None for no hours); refused when not finite
    or more than 100 years."""
    if not hours:
        return None
    if not (math.isfinite(hours) and 0 < hours <= 100 * 365 * 24):
        raise OperationError(f"--expires-hours: expected hours between 0 and 876000, got {hours!r}")
    return at + hours * 3600


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an operation: its trigger key and attribute, how it is checked,
    and how it appears on the command line (`flag` None: it does not)."""

    name: str
    check: Callable[[str, str, Any], Any]
    flag: str | None
    help: str | None = None
    default: Any = ""  # when the trigger (or the command line) leaves it out
    required: bool = True  # on the command line
    # The command line gives another quantity: (its value, the request time) -> field.
    from_cli: Callable[[Any, float], Any] | None = None
    cli_type: type = str


BRANCH = Field("branch", _branch, "--branch")
ARCH = Field("arch", _arch, "--arch", "one arch (default: every arch)", required=False)
WHOLE_BRANCH = Field("arch", _arch, None)  # kept in the trigger format, always ""
PKGNAME = Field("pkgname", _pkgname, "pkgname")
JOB = Field("job", _job, "job", "the job id, as shown on the site")
WHY = Field("why", _text(500), "--why", "the reason, shown on the site")
WHO = Field("who", _text(100), "--who", "who asks (default: the current user)", required=False)
EXPIRES = Field(
    "expires",
    _time,
    "--expires-hours",
    "end the hold by itself",
    default=None,
    required=False,
    from_cli=_hours,
    cli_type=float,
)


RESUMES = Field(
    "expires",
    _time,
    "--expires-hours",
    "resume by itself after this many hours",
    default=None,
    required=False,
    from_cli=_hours,
    cli_type=float,
)


# --- operations -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Applied:
    """An operation's effect on the plan's inputs."""

    intents: Intents
    events: tuple[Event, ...] = ()
    removals: tuple[BranchRemoval, ...] = ()
    record: OperationRecord | None = None  # None for what is not an operation (a push)


@dataclass(frozen=True, slots=True)
class Operation:
    """What every operation carries; subclasses add their own fields."""

    NAME: ClassVar[str]
    HELP: ClassVar[str]
    FIELDS: ClassVar[tuple[Field, ...]]  # in command-line and validation order

    who: str
    why: str
    requested_at: float = field(default=0.0, kw_only=True)

    @classmethod
    def from_trigger(cls, source: str, data: Mapping[str, Any]) -> Self:
        """The operation a trigger file's fields describe; OperationError names the
        file and the first field that is not what was expected."""
        values = {f.name: f.check(source, f.name, data.get(f.name, f.default)) for f in cls.FIELDS}
        requested_at = data.get("requested_at", 0.0)
        if not is_unix_time(requested_at):
            requested_at = 0.0
        return cls(requested_at=float(requested_at), **values)

    def trigger(self) -> dict[str, Any]:
        """The trigger file's fields (a None field is left out)."""
        document: dict[str, Any] = {
            "type": self.NAME,
            "who": self.who,
            "why": self.why,
            "requested_at": self.requested_at,
        }
        for f in self.FIELDS:
            value = getattr(self, f.name)
            if value is not None and f.name not in document:
                document[f.name] = value
        return document

    def apply(self, intents: Intents, world: World) -> Applied:
        """The new intents, the events to record, the branches to remove and the
        operation's own record."""
        raise NotImplementedError

    def record(self, world: World, target: str, outcome: str, effect: str) -> OperationRecord:
        """This operation as carried out: `outcome` is applied, refused or no-op."""
        return OperationRecord(world.now, self.NAME, self.who, self.why, target, outcome, effect)


def _where(branch: str, arch: str) -> str:
    return f"{branch}/{arch}" if arch else branch


@dataclass(frozen=True, slots=True)
class HoldPackage(Operation):
    NAME = "hold"
    HELP = "stop building a package; its published apks stay, the rest publishes"
    FIELDS = (BRANCH, ARCH, PKGNAME, WHY, WHO, EXPIRES)

    branch: str
    arch: str
    pkgname: str
    expires: float | None = None

    def apply(self, intents: Intents, world: World) -> Applied:
        hold = Hold(
            self.branch, self.arch, self.pkgname, self.who, self.why, world.now, self.expires
        )
        kept = tuple(
            h
            for h in intents.holds
            if (h.branch, h.arch, h.pkgname) != (self.branch, self.arch, self.pkgname)
        )
        where = _where(self.branch, self.arch)
        message = f"held by {self.who}: {self.why}"
        event = Event(world.now, where, self.pkgname, "", "operator", message)
        until = (
            f" until {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(self.expires))}"
            if self.expires is not None
            else ""
        )
        replaced = " (replacing an earlier hold)" if len(kept) < len(intents.holds) else ""
        record = self.record(world, f"{where} {self.pkgname}", "applied", f"held{until}{replaced}")
        return Applied(replace(intents, holds=(*kept, hold)), (event,), record=record)


@dataclass(frozen=True, slots=True)
class ReleasePackage(Operation):
    NAME = "release"
    HELP = "end a hold"
    FIELDS = (BRANCH, ARCH, PKGNAME, WHY, WHO)

    branch: str
    arch: str
    pkgname: str

    def apply(self, intents: Intents, world: World) -> Applied:
        kept = tuple(
            h
            for h in intents.holds
            if not (
                h.branch == self.branch and h.pkgname == self.pkgname and self.arch in ("", h.arch)
            )
        )
        where = _where(self.branch, self.arch)
        target = f"{where} {self.pkgname}"
        ended = len(intents.holds) - len(kept)
        if not ended:
            record = self.record(world, target, "no-op", "nothing of it was held")
            return Applied(intents, record=record)
        message = f"released by {self.who}: {self.why}"
        event = Event(world.now, where, self.pkgname, "", "operator", message)
        record = self.record(world, target, "applied", f"ended {ended} hold(s)")
        return Applied(replace(intents, holds=kept), (event,), record=record)


def _grant(
    op: Operation,
    intents: Intents,
    world: World,
    branch: str,
    targets: list[tuple[str, str]],
    target: str,
) -> Applied:
    """Fresh tries for each (arch, pkgname): their attempts so far stop counting.
    With nothing to give them to, a no-op (recorded all the same)."""
    if not targets:
        return Applied(intents, record=op.record(world, target, "no-op", "nothing was failing"))
    grants = list(intents.retries)
    events = []
    for arch, pkgname in targets:
        highest = world.highest(branch, arch, pkgname)
        grants = [g for g in grants if (g.branch, g.arch, g.pkgname) != (branch, arch, pkgname)]
        grants.append(RetryGrant(branch, arch, pkgname, highest, op.who, op.why, world.now))
        message = f"{op.NAME} by {op.who}: {op.why}"
        events.append(Event(world.now, _where(branch, arch), pkgname, "", "operator", message))
    names = ", ".join(f"{_where(branch, a)} {p}" for a, p in targets)
    record = op.record(world, target, "applied", f"fresh tries for {names}")
    return Applied(replace(intents, retries=tuple(grants)), tuple(events), record=record)


@dataclass(frozen=True, slots=True)
class RetryPackage(Operation):
    NAME = "retry"
    HELP = "give a failed package fresh tries, starting now"
    FIELDS = (BRANCH, ARCH, PKGNAME, WHY, WHO)

    branch: str
    arch: str
    pkgname: str

    def apply(self, intents: Intents, world: World) -> Applied:
        target = f"{_where(self.branch, self.arch)} {self.pkgname}"
        return _grant(self, intents, world, self.branch, [(self.arch, self.pkgname)], target)


@dataclass(frozen=True, slots=True)
class RequeueFailed(Operation):
    NAME = "requeue"
    HELP = "give every failed package of a branch (or branch/arch) fresh tries"
    FIELDS = (BRANCH, ARCH, WHY, WHO)

    branch: str
    arch: str

    def apply(self, intents: Intents, world: World) -> Applied:
        targets = [(a, p) for b, a, p in world.failing if b == self.branch and self.arch in ("", a)]
        where = _where(self.branch, self.arch)
        return _grant(self, intents, world, self.branch, targets, where)


@dataclass(frozen=True, slots=True)
class RebuildPackage(Operation):
    NAME = "rebuild"
    HELP = "build a published package again at the same version and publish that"
    FIELDS = (BRANCH, ARCH, PKGNAME, WHY, WHO)

    branch: str
    arch: str
    pkgname: str

    def apply(self, intents: Intents, world: World) -> Applied:
        """A rebuild at the same version, for every arch (or the one named) where
        final publishes the desired version; refused when it publishes none."""
        branch, pkgname = self.branch, self.pkgname
        kept = [r for r in intents.rebuilds if (r.branch, r.pkgname) != (branch, pkgname)]
        events = []
        for (where, name), (version, checksum) in sorted(world.published(branch, pkgname).items()):
            if name != pkgname or self.arch not in ("", where):
                continue
            highest = world.highest(branch, where, pkgname, version)
            kept.append(
                RebuildRequest(
                    branch,
                    where,
                    pkgname,
                    version,
                    checksum,
                    highest,
                    self.who,
                    self.why,
                    world.now,
                )
            )
            message = f"rebuild of {version} asked by {self.who}: {self.why}"
            events.append(
                Event(world.now, f"{branch}/{where}", pkgname, version, "operator", message)
            )
        target = f"{_where(branch, self.arch)} {pkgname}"
        if not events:
            message = (
                f"rebuild asked by {self.who} refused: nothing of it is published ({self.why})"
            )
            where = _where(branch, self.arch)
            events.append(Event(world.now, where, pkgname, "", "operator", message))
            record = self.record(world, target, "refused", "nothing of it is published")
            return Applied(intents, tuple(events), record=record)
        arches = ", ".join(e.repo.split("/", 1)[1] for e in events)
        record = self.record(world, target, "applied", f"a rebuild at the same version ({arches})")
        return Applied(replace(intents, rebuilds=tuple(kept)), tuple(events), record=record)


@dataclass(frozen=True, slots=True)
class FailJob(Operation):
    NAME = "fail-job"
    HELP = "declare a job dead: it is cancelled and counts as a failed try"
    FIELDS = (JOB, WHY, WHO)

    job: str

    def apply(self, intents: Intents, world: World) -> Applied:
        key = JobKey.from_job_id(self.job)
        dead = DeadJob(key.job_id, self.who, self.why, world.now)
        kept = tuple(d for d in intents.dead_jobs if d.job_id != key.job_id)
        message = f"job {key.job_id} declared dead by {dead.who}: {dead.why}"
        intent = key.intent
        event = Event(
            world.now,
            str(intent.repo),
            intent.pkgname,
            intent.version,
            "operator",
            message,
            job_id=key.job_id,
        )
        known = key in world.observed.jobs
        effect = "declared dead: cancelled, counts as a failed try"
        record = self.record(
            world,
            key.job_id,
            "applied",
            effect if known else effect + " (the job service does not list it)",
        )
        return Applied(replace(intents, dead_jobs=(*kept, dead)), (event,), record=record)


@dataclass(frozen=True, slots=True)
class RemoveBranch(Operation):
    NAME = "remove-branch"
    HELP = "delete the repositories of a branch no longer configured"
    FIELDS = (BRANCH, WHOLE_BRANCH, WHY, WHO)

    branch: str
    arch: str

    def apply(self, intents: Intents, world: World) -> Applied:
        """Refused, as an event, for a branch still built or one with nothing on
        disk; else the plan removes it."""
        branch, who, why = self.branch, self.who, self.why
        refusal = ""
        if branch in world.desired:
            refusal = f"{branch} is still built"
        elif branch not in world.stored:
            refusal = f"{branch} has no repositories"
        if refusal:
            message = f"removal asked by {who} refused: {refusal} ({why})"
            record = self.record(world, branch, "refused", refusal)
            event = Event(world.now, branch, "", "", "operator", message)
            return Applied(intents, (event,), record=record)
        message = f"data of {branch} removed by {who}: {why}"
        event = Event(world.now, branch, "", "", "removed", message)
        removal = BranchRemoval(branch, f"removed by {who}: {why}")
        record = self.record(
            world, branch, "applied", "its WIP, symlink and final repositories deleted"
        )
        return Applied(intents, (event,), (removal,), record)


@dataclass(frozen=True, slots=True)
class PauseBranch(Operation):
    NAME = "pause"
    HELP = "start no new job on a branch (or branch/arch); running ones finish and publish"
    FIELDS = (BRANCH, ARCH, WHY, WHO, RESUMES)

    branch: str
    arch: str
    expires: float | None = None

    def apply(self, intents: Intents, world: World) -> Applied:
        pause = Pause(self.branch, self.arch, self.who, self.why, world.now, self.expires)
        kept = tuple(p for p in intents.pauses if (p.branch, p.arch) != (self.branch, self.arch))
        where = _where(self.branch, self.arch)
        message = f"paused by {self.who}: {self.why}"
        event = Event(world.now, where, "", "", "operator", message)
        record = self.record(world, where, "applied", "no new job starts there")
        return Applied(replace(intents, pauses=(*kept, pause)), (event,), record=record)


@dataclass(frozen=True, slots=True)
class ResumeBranch(Operation):
    NAME = "resume"
    HELP = "end a pause"
    FIELDS = (BRANCH, ARCH, WHY, WHO)

    branch: str
    arch: str

    def apply(self, intents: Intents, world: World) -> Applied:
        kept = tuple(
            p for p in intents.pauses if not (p.branch == self.branch and self.arch in ("", p.arch))
        )
        where = _where(self.branch, self.arch)
        ended = len(intents.pauses) - len(kept)
        if not ended:
            return Applied(intents, record=self.record(world, where, "no-op", "nothing was paused"))
        message = f"resumed by {self.who}: {self.why}"
        event = Event(world.now, where, "", "", "operator", message)
        record = self.record(world, where, "applied", f"ended {ended} pause(s)")
        return Applied(replace(intents, pauses=kept), (event,), record=record)


OPERATIONS: Mapping[str, type[Operation]] = {
    op.NAME: op
    for op in (
        RetryPackage,
        HoldPackage,
        ReleasePackage,
        RequeueFailed,
        RebuildPackage,
        FailJob,
        RemoveBranch,
        PauseBranch,
        ResumeBranch,
    )
}
