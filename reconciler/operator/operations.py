"""The registry of operator operations: what an operator can ask of the daemon.

Each operation is a frozen dataclass that holds, in one place, its name and help,
its fields (which are its command-line arguments and the fields of its trigger
file, validated the same way for both), and its effect on the plan's inputs:
`apply` turns it into new standing intents, events and branch removals. The CLI
builds its subcommands from `OPERATIONS`, the trigger reader validates with it,
the loop applies it; adding an operation means adding a class to `OPERATIONS`
and teaching the plan what its intent means.

A trigger file of an operation is one JSON object: `type` (the name), `who`,
`why`, `requested_at`, then the operation's own fields in order. A field may
stand aside for another (`Field.unless`): `hold`, `release` and `retry` name a
package (`branch`, `arch`, `pkgname`) or, with `image`
(`branch:device:ui[:kernel]`), a device image instead. `build-image` and
`remove-images` act on images only.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Self

from reconciler.model.errors import InputError
from reconciler.model.images import (
    DesiredImage,
    ImageTarget,
    is_image_name,
    is_release_name,
    slot_epoch,
    slot_name,
)
from reconciler.model.jobs import JobKey, JobKind
from reconciler.model.names import is_safe_arch, is_safe_branch, is_safe_name
from reconciler.model.progress import Event, OperationRecord
from reconciler.operator.intents import (
    BranchRemoval,
    DeadJob,
    Hold,
    ImageHold,
    ImageRemoval,
    ImageRequest,
    ImageRetry,
    Intents,
    Pause,
    RebuildRequest,
    RetryGrant,
    image_name,
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


def _image_name(what: str, optional: bool = False) -> Callable[[str, str, Any], str]:
    """A device codename, UI or kernel name (`model.images.is_image_name`); ""
    when `optional` and left out."""

    def check(source: str, name: str, value: Any) -> str:
        if optional and value == "":
            return ""
        if not isinstance(value, str) or not is_image_name(value):
            nothing = " or nothing" if optional else ""
            raise OperationError(
                f"{source}: field {name!r}: expected a {what} name{nothing}"
                f" (a-z, 0-9, '.', '+', '-'), got {value!r}"
            )
        return value

    return check


def _release(source: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not is_release_name(value):
        raise OperationError(
            f"{source}: field {name!r}: expected a release name (edge, v25.12), got {value!r}"
        )
    return value


IMAGE_FORMAT = "BRANCH:DEVICE:UI[:KERNEL]"


def parse_image(spec: str) -> tuple[str, str, str, str]:
    """(branch, device, ui, kernel) of `branch:device:ui[:kernel]` (kernel "" when
    none is named); ValueError naming the part that is not valid."""
    parts = spec.split(":")
    if len(parts) not in (3, 4) or parts[-1] == "":
        raise ValueError(f"expected {IMAGE_FORMAT}, got {spec!r}")
    branch, device, ui, kernel = (*parts, "") if len(parts) == 3 else parts
    if not is_safe_branch(branch):
        raise ValueError(f"{spec!r}: {branch!r} is not a branch name")
    for what, value in (("device", device), ("UI", ui), ("kernel", kernel)):
        if (value or what != "kernel") and not is_image_name(value):
            raise ValueError(f"{spec!r}: {value!r} is not a valid {what} name")
    return branch, device, ui, kernel


def _image(source: str, name: str, value: Any) -> str | None:
    if value is None:
        return None
    try:
        parse_image(value if isinstance(value, str) else repr(value))
    except ValueError as exc:
        raise OperationError(f"{source}: field {name!r}: {exc}") from exc
    return str(value)


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
    # When the field named here is given, this one stands aside: it must be left
    # out (or empty) and takes its default; when not, this one is checked.
    unless: str = ""
    metavar: str | None = None  # on the command line (None: argparse's)


BRANCH = Field("branch", _branch, "--branch")
ARCH = Field("arch", _arch, "--arch", "one arch (default: every arch)", required=False)
WHOLE_BRANCH = Field("arch", _arch, None)  # kept in the trigger format, always ""
PKGNAME = Field("pkgname", _pkgname, "pkgname")
JOB = Field("job", _job, "job", "the job id, as shown on the site")
WHY = Field("why", _text(500), "--why", "the reason, shown on the site")
WHO = Field("who", _text(100), "--who", "who asks (default: the current user)", required=False)
IMAGE = Field(
    "image",
    _image,
    "--image",
    f"an image instead of a package: {IMAGE_FORMAT} (no KERNEL: every kernel of the device)",
    default=None,
    required=False,
    metavar=IMAGE_FORMAT,
)
# A package's fields where an image may be named instead.
PKG_BRANCH = replace(BRANCH, help="the package's branch", required=False, unless="image")
PKG_ARCH = replace(ARCH, unless="image")
PKG_PKGNAME = replace(PKGNAME, help="the package (or --image)", required=False, unless="image")
IMAGE_BRANCH = replace(BRANCH, help="the branch whose final repository the image is made from")
DEVICE = Field("device", _image_name("device"), "--device", "the device's codename")
UI = Field("ui", _image_name("UI"), "--ui", "the UI")
KERNEL = Field(
    "kernel",
    _image_name("kernel", optional=True),
    "--kernel",
    "one kernel (default: every kernel of the device)",
    required=False,
)
RELEASE = Field("release", _release, "--release", "the release directory: edge, v25.12, ...")
EVERY_UI = Field(
    "ui",
    _image_name("UI", optional=True),
    "--ui",
    "one UI (default: every UI of the device)",
    required=False,
)
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
    DESCRIPTION: ClassVar[str] = ""  # the command's own help text, when HELP is not enough

    who: str
    why: str
    requested_at: float = field(default=0.0, kw_only=True)

    @classmethod
    def from_trigger(cls, source: str, data: Mapping[str, Any]) -> Self:
        """The operation a trigger file's fields describe; OperationError names the
        file and the first field that is not what was expected."""
        values = {f.name: _checked(source, f, data) for f in cls.FIELDS}
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


def _checked(source: str, field: Field, data: Mapping[str, Any]) -> Any:
    """One field's value from a trigger's fields, checked; a field that stands
    aside for another one that is given must be left out."""
    value = data.get(field.name, field.default)
    if field.unless and data.get(field.unless) not in (None, ""):
        if value not in (None, "", field.default):
            raise OperationError(
                f"{source}: field {field.name!r}: not with {field.unless!r}: give one of them"
            )
        return field.default
    try:
        return field.check(source, field.name, value)
    except OperationError as exc:
        if field.unless:
            raise OperationError(f"{exc} (or give {field.unless!r})") from exc
        raise


def _where(branch: str, arch: str) -> str:
    return f"{branch}/{arch}" if arch else branch


def _until(expires: float | None) -> str:
    if expires is None:
        return ""
    return f" until {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(expires))}"


_BOTH_FORMS = (
    "Name a package (--branch B [--arch A] PKG) or, with --image, a device image:"
    f" {IMAGE_FORMAT}, bpo's notation (main:demo-phone:demo; without KERNEL, every"
    " kernel of the device)."
)


@dataclass(frozen=True, slots=True)
class HoldPackage(Operation):
    NAME = "hold"
    HELP = "stop building a package (or an image); what is published stays"
    FIELDS = (PKG_BRANCH, PKG_ARCH, PKG_PKGNAME, IMAGE, WHY, WHO, EXPIRES)
    DESCRIPTION = (
        "A held package is not built; its published apks stay and the rest of its"
        " repository publishes. A held image starts no job (a finished one is not"
        " published) and shows as held; its published images stay. " + _BOTH_FORMS
    )

    branch: str
    arch: str
    pkgname: str
    expires: float | None = None
    image: str | None = None

    def apply(self, intents: Intents, world: World) -> Applied:
        if self.image is not None:
            return _hold_image(self, self.image, intents, world)
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
        until = _until(self.expires)
        replaced = " (replacing an earlier hold)" if len(kept) < len(intents.holds) else ""
        record = self.record(world, f"{where} {self.pkgname}", "applied", f"held{until}{replaced}")
        return Applied(replace(intents, holds=(*kept, hold)), (event,), record=record)


@dataclass(frozen=True, slots=True)
class ReleasePackage(Operation):
    NAME = "release"
    HELP = "end a hold (of a package or an image)"
    FIELDS = (PKG_BRANCH, PKG_ARCH, PKG_PKGNAME, IMAGE, WHY, WHO)
    DESCRIPTION = (
        "Ends the holds of a package (without --arch: of every arch) or of an image"
        " (without KERNEL: of every kernel). " + _BOTH_FORMS
    )

    branch: str
    arch: str
    pkgname: str
    image: str | None = None

    def apply(self, intents: Intents, world: World) -> Applied:
        if self.image is not None:
            return _release_image(self, self.image, intents, world)
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
    HELP = "give a failed package (or image) fresh tries, starting now"
    FIELDS = (PKG_BRANCH, PKG_ARCH, PKG_PKGNAME, IMAGE, WHY, WHO)
    DESCRIPTION = (
        "The tries made so far stop counting and the next one starts at once. For an"
        " image, the failed jobs of each of its slots (and of a build-image request)"
        " get fresh tries. " + _BOTH_FORMS
    )

    branch: str
    arch: str
    pkgname: str
    image: str | None = None

    def apply(self, intents: Intents, world: World) -> Applied:
        if self.image is not None:
            return _retry_image(self, self.image, intents, world)
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
        if intent.kind is JobKind.IMAGE:
            with contextlib.suppress(ValueError):
                effect += f" of image {ImageTarget.from_intent(intent)}"
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


@dataclass(frozen=True, slots=True)
class BuildImage(Operation):
    NAME = "build-image"
    HELP = "build a configured image now, outside its slot"
    FIELDS = (IMAGE_BRANCH, DEVICE, UI, KERNEL, WHY, WHO)
    DESCRIPTION = (
        "Builds the image (every kernel of the device without --kernel) once now, as"
        " if a slot started at this minute, from what the final repository publishes:"
        " its own job identity and date directory, published beside the slot's"
        " images (keep counts it). The request stands until that image is published."
        " Refused when the image is not configured, or not built in this slot."
    )

    branch: str
    device: str
    ui: str
    kernel: str

    def apply(self, intents: Intents, world: World) -> Applied:
        """A request per configured kernel, each with its own slot name; refused,
        with the reason, for an image this slot does not build."""
        name = image_name(self.branch, self.device, self.ui, self.kernel)
        images = world.desired_images(self.branch, self.device, self.ui, self.kernel)
        if not images:
            refusal = _not_built(world, self.branch, self.device, self.ui, self.kernel)
            message = f"build of image {name} asked by {self.who} refused: {refusal} ({self.why})"
            event = Event(world.now, self.branch, "", "", "operator", message)
            return Applied(intents, (event,), record=self.record(world, name, "refused", refusal))
        requests = list(intents.image_requests)
        made = []
        for image in images:
            slot = _request_slot(world, image)
            requests = [r for r in requests if not r.matches(image.target)]
            target = image.target
            requests.append(
                ImageRequest(
                    target.branch,
                    target.device,
                    target.ui,
                    target.kernel,
                    slot,
                    self.who,
                    self.why,
                    world.now,
                )
            )
            made.append(
                f"{image_name(target.branch, target.device, target.ui, target.kernel)} as of {slot}"
            )
        replaced = len(intents.image_requests) + len(images) - len(requests)
        again = f" (replacing {replaced} earlier request(s))" if replaced else ""
        message = f"image {name} asked for now by {self.who}: {self.why}"
        event = Event(world.now, self.branch, "", "", "operator", message)
        effect = f"built now, outside its slot: {', '.join(made)}{again}"
        record = self.record(world, name, "applied", effect)
        return Applied(replace(intents, image_requests=tuple(requests)), (event,), record=record)


@dataclass(frozen=True, slots=True)
class RemoveImages(Operation):
    NAME = "remove-images"
    HELP = "delete the published images of a device (or UI) no longer configured"
    FIELDS = (RELEASE, DEVICE, EVERY_UI, WHY, WHO)
    DESCRIPTION = (
        "Deletes <paths.images>/RELEASE/DEVICE[/UI] (without --ui: every UI of the"
        " device) with the site's copies of its jobs' logs: the directory is renamed"
        " aside at once, then deleted. Refused while the configuration still builds"
        " the device (or UI) for that release, and when nothing is published there."
    )

    release: str
    device: str
    ui: str

    def apply(self, intents: Intents, world: World) -> Applied:
        """Refused for an image still configured or nothing published; else the
        plan removes it (the request stands until nothing of it is left)."""
        removal = ImageRemoval(self.release, self.device, self.ui, self.who, self.why, world.now)
        target = f"images/{removal.path}"
        configured = world.configures(self.release, self.device, self.ui)
        published = world.published_images(self.release, self.device, self.ui)
        refusal = ""
        if configured:
            branches = ", ".join(sorted({m[0] for m in configured}))
            uis = ", ".join(sorted({m[3] for m in configured}))
            refusal = (
                f"{removal.path} is still configured: branch {branches} builds {self.device}"
                f" with UI {uis} as release {self.release}; take it out of images.devices first"
            )
        elif not published:
            refusal = f"nothing is published under {removal.path}"
        if refusal:
            message = f"removal of images asked by {self.who} refused: {refusal} ({self.why})"
            event = Event(world.now, target, "", "", "operator", message)
            return Applied(intents, (event,), record=self.record(world, target, "refused", refusal))
        kept = tuple(
            r
            for r in intents.image_removals
            if (r.release, r.device, r.ui) != (self.release, self.device, self.ui)
        )
        dates = sorted(f"{p.ui}/{p.date}" for p in published)
        message = f"images under {removal.path} removed by {self.who}: {self.why}"
        event = Event(world.now, target, "", "", "removed", message)
        effect = (
            f"{len(dates)} published date director{'y' if len(dates) == 1 else 'ies'}"
            f" removed with their logs: {', '.join(dates)}"
        )
        record = self.record(world, target, "applied", effect)
        return Applied(replace(intents, image_removals=(*kept, removal)), (event,), record=record)


# --- images -----------------------------------------------------------------------


def _hold_image(op: HoldPackage, spec: str, intents: Intents, world: World) -> Applied:
    branch, device, ui, kernel = parse_image(spec)
    hold = ImageHold(branch, device, ui, kernel, op.who, op.why, world.now, op.expires)
    same = (branch, device, ui, kernel)
    kept = tuple(h for h in intents.image_holds if (h.branch, h.device, h.ui, h.kernel) != same)
    message = f"image {hold.name} held by {op.who}: {op.why}"
    event = Event(world.now, branch, "", "", "operator", message)
    replaced = " (replacing an earlier hold)" if len(kept) < len(intents.image_holds) else ""
    unknown = "" if _is_configured(world, *same) else " (no such image is configured now)"
    effect = f"held{_until(op.expires)}{replaced}: no job of it starts{unknown}"
    record = op.record(world, hold.name, "applied", effect)
    return Applied(replace(intents, image_holds=(*kept, hold)), (event,), record=record)


def _release_image(op: ReleasePackage, spec: str, intents: Intents, world: World) -> Applied:
    branch, device, ui, kernel = parse_image(spec)
    name = image_name(branch, device, ui, kernel)
    kept = tuple(
        h
        for h in intents.image_holds
        if not ((h.branch, h.device, h.ui) == (branch, device, ui) and kernel in ("", h.kernel))
    )
    ended = len(intents.image_holds) - len(kept)
    if not ended:
        return Applied(intents, record=op.record(world, name, "no-op", "nothing of it was held"))
    message = f"image {name} released by {op.who}: {op.why}"
    event = Event(world.now, branch, "", "", "operator", message)
    record = op.record(world, name, "applied", f"ended {ended} hold(s)")
    return Applied(replace(intents, image_holds=kept), (event,), record=record)


def _retry_image(op: RetryPackage, spec: str, intents: Intents, world: World) -> Applied:
    """Fresh tries for every failed job set of the image (each slot's, and a
    request's): their attempts so far stop counting."""
    branch, device, ui, kernel = parse_image(spec)
    name = image_name(branch, device, ui, kernel)
    failed = [
        (target, attempt)
        for target, attempt in _image_failures(world, intents)
        if (target.branch, target.device, target.ui) == (branch, device, ui)
        and kernel in ("", target.kernel)
    ]
    if not failed:
        return Applied(intents, record=op.record(world, name, "no-op", "nothing was failing"))
    grants = [g for g in intents.image_retries if not any(g.applies(t) for t, _ in failed)]
    for target, attempt in failed:
        grants.append(
            ImageRetry(
                target.branch,
                target.device,
                target.ui,
                target.kernel,
                target.slot,
                attempt,
                op.who,
                op.why,
                world.now,
            )
        )
    message = f"image {name}: {op.NAME} by {op.who}: {op.why}"
    event = Event(world.now, branch, "", "", "operator", message)
    names = ", ".join(str(t) for t, _ in failed)
    record = op.record(world, name, "applied", f"fresh tries for {names}")
    return Applied(replace(intents, image_retries=tuple(grants)), (event,), record=record)


def _image_failures(world: World, intents: Intents) -> list[tuple[ImageTarget, int]]:
    """(image, its highest attempt) of every image whose last try failed: the
    job failed, its files were refused or it was declared dead."""
    found: list[tuple[ImageTarget, int]] = []
    for intent, attempt in sorted(world.attempts.items()):
        if intent.kind is not JobKind.IMAGE:
            continue
        key = JobKey(intent, attempt)
        obs = world.observed.jobs.get(key)
        if obs is None or obs.status.is_live:
            continue
        if not (
            obs.status.is_failure
            or key.job_id in world.observed.rejected
            or intents.dead(key.job_id) is not None
        ):
            continue
        try:
            found.append((ImageTarget.from_intent(intent), attempt))
        except ValueError:
            continue
    return found


def _is_configured(world: World, branch: str, device: str, ui: str, kernel: str) -> bool:
    return any(
        (m[0], m[2], m[3]) == (branch, device, ui) and kernel in ("", m[4]) for m in world.matrix
    )


def _not_built(world: World, branch: str, device: str, ui: str, kernel: str) -> str:
    """Why this slot builds no such image, as precisely as the configuration says."""
    entries = [m for m in world.matrix if m[0] == branch]
    devices = [m for m in entries if m[2] == device]
    uis = [m for m in devices if m[3] == ui]
    if not world.matrix:
        return "no images are configured"
    if not entries:
        return f"branch {branch} builds no images"
    if not devices:
        known = ", ".join(sorted({m[2] for m in entries}))
        return f"device {device} is not configured on {branch} (configured: {known})"
    if not uis:
        known = ", ".join(sorted({m[3] for m in devices}))
        return f"{device} has no UI {ui} on {branch} (configured: {known})"
    if kernel and not any(m[4] == kernel for m in uis):
        known = ", ".join(sorted(m[4] or '""' for m in uis))
        return f"{device} has no kernel {kernel} on {branch} (configured: {known})"
    return (
        f"{image_name(branch, device, ui, kernel)} is configured but not built in this slot"
        " (the tree lacks one of its packages, or the first slot has not begun:"
        " see the problems on the status page)"
    )


def _request_slot(world: World, image: DesiredImage) -> str:
    """The slot name of an image asked for now: this minute, or the minute after
    the current slot's start and every date directory of its (release, device,
    UI) when one of them is not older, so that its job and date directory are
    its own."""
    target = image.target
    dates = [
        p.date
        for p in world.observed.images
        if (p.release, p.device, p.ui) == (image.release, target.device, target.ui)
    ]
    latest = max([target.slot, *dates])
    slot = slot_name(world.now)
    return slot if slot > latest else slot_name(slot_epoch(latest) + 60)


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
        BuildImage,
        RemoveImages,
    )
}
