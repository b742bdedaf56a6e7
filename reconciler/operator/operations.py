"""Operator intents: holds and retry grants, their durable file, and the
manual-operation trigger files that change them.

The file (`<state>/intents.json`) is written atomically and is never a cache:
deleting the state cache keeps every hold and retry. Trigger files are
validated field by field; a bad one is refused with a message that names the
file and the field.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from reconciler.fs.atomicfile import write_text
from reconciler.model.jobs import JobIntent, JobKey
from reconciler.model.names import is_safe_arch, is_safe_branch, is_safe_name
from reconciler.model.packages import BranchDesired
from reconciler.model.progress import Event
from reconciler.operator.intents import DeadJob, Hold, Intents, RebuildRequest, RetryGrant

log = logging.getLogger(__name__)

OPERATIONS = ("retry", "hold", "release", "requeue", "rebuild", "fail-job", "remove-branch")
SCHEMA_VERSION = 1


class IntentError(ValueError):
    pass


def load_intents(path: Path) -> Intents:
    """The operator intents on disk; an unreadable file is an error, never ignored."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Intents()
    except (OSError, ValueError) as exc:
        raise IntentError(f"{path}: unreadable operator intents: {exc}") from exc
    try:
        return Intents(
            holds=tuple(Hold(**h) for h in data.get("holds", [])),
            retries=tuple(RetryGrant(**r) for r in data.get("retries", [])),
            rebuilds=tuple(RebuildRequest(**r) for r in data.get("rebuilds", [])),
            dead_jobs=tuple(DeadJob(**d) for d in data.get("dead_jobs", [])),
        )
    except TypeError as exc:
        raise IntentError(f"{path}: unexpected content: {exc}") from exc


def save_intents(path: Path, intents: Intents) -> None:
    document = {
        "schema_version": SCHEMA_VERSION,
        "holds": [asdict(h) for h in intents.holds],
        "retries": [asdict(r) for r in intents.retries],
        "rebuilds": [asdict(r) for r in intents.rebuilds],
        "dead_jobs": [asdict(d) for d in intents.dead_jobs],
    }
    write_text(path, json.dumps(document, indent=1, sort_keys=True) + "\n", mode=0o600)


def check_operation(name: str, data: Mapping[str, Any]) -> None:
    """Validate a manual-operation trigger; IntentError names the file and the field."""

    def text(field: str, required: bool = True, limit: int = 500) -> str:
        value = data.get(field, "")
        if not isinstance(value, str) or (required and not value) or len(value) > limit:
            raise IntentError(f"{name}: field {field!r}: expected a non-empty text")
        if "\x00" in value:
            raise IntentError(f"{name}: field {field!r}: NUL characters are not allowed")
        return value

    op = data.get("type")
    if op == "fail-job":
        job = data.get("job")
        try:
            JobKey.from_job_id(job if isinstance(job, str) else "")
        except ValueError as exc:
            raise IntentError(f"{name}: field 'job': expected a job id ({exc})") from exc
    elif not isinstance(data.get("branch"), str) or not is_safe_branch(data["branch"]):
        raise IntentError(f"{name}: field 'branch': expected a branch name")
    arch = data.get("arch", "")
    if not isinstance(arch, str) or (arch and not is_safe_arch(arch)):
        raise IntentError(f"{name}: field 'arch': expected an arch or nothing")
    if op not in ("requeue", "fail-job", "remove-branch"):
        pkgname = data.get("pkgname")
        if not isinstance(pkgname, str) or not is_safe_name(pkgname):
            raise IntentError(f"{name}: field 'pkgname': expected a package name")
    text("who", limit=100)
    text("why")
    expires = data.get("expires")
    if expires is not None and not isinstance(expires, int | float):
        raise IntentError(f"{name}: field 'expires': expected a unix time or nothing")


def apply_operation(
    intents: Intents,
    data: Mapping[str, Any],
    now: float,
    attempts: Mapping[JobIntent, int],
    failed: list[tuple[str, str]],
) -> tuple[Intents, list[Event]]:
    """A validated operation -> the new intents and the events to record.

    `attempts` is the highest attempt per build intent the job service holds;
    `failed` lists (arch, pkgname) of packages failing on the branch now."""
    op, branch, arch = data["type"], data["branch"], data.get("arch", "")
    who, why = data["who"], data["why"]
    repo = f"{branch}/{arch}" if arch else branch
    if op == "hold":
        hold = Hold(branch, arch, data["pkgname"], who, why, now, data.get("expires"))
        kept = tuple(
            h
            for h in intents.holds
            if (h.branch, h.arch, h.pkgname) != (branch, arch, hold.pkgname)
        )
        message = f"held by {who}: {why}"
        return replace(intents, holds=(*kept, hold)), [
            Event(now, repo, hold.pkgname, "", "operator", message)
        ]
    if op == "release":
        pkgname = data["pkgname"]
        kept = tuple(
            h
            for h in intents.holds
            if not (h.branch == branch and h.pkgname == pkgname and arch in ("", h.arch))
        )
        message = f"released by {who}: {why}"
        return replace(intents, holds=kept), [Event(now, repo, pkgname, "", "operator", message)]
    targets = (
        [(arch, data["pkgname"])] if op == "retry" else [f for f in failed if arch in ("", f[0])]
    )
    grants = list(intents.retries)
    events = []
    for target_arch, pkgname in targets:
        highest = max(
            (
                n
                for i, n in attempts.items()
                if i.repo.branch == branch
                and i.pkgname == pkgname
                and target_arch in ("", i.repo.arch)
            ),
            default=0,
        )
        grants = [
            g for g in grants if (g.branch, g.arch, g.pkgname) != (branch, target_arch, pkgname)
        ]
        grants.append(RetryGrant(branch, target_arch, pkgname, highest, who, why, now))
        where = f"{branch}/{target_arch}" if target_arch else branch
        events.append(Event(now, where, pkgname, "", "operator", f"{op} by {who}: {why}"))
    return replace(intents, retries=tuple(grants)), events


def apply_rebuild(
    intents: Intents,
    data: Mapping[str, Any],
    now: float,
    attempts: Mapping[JobIntent, int],
    published: Mapping[tuple[str, str], tuple[str, str]],
) -> tuple[Intents, list[Event]]:
    """A rebuild at the same version, for every arch (or the one named) where final
    publishes the desired version; `published` maps (arch, pkgname) of the branch
    to (version, checksum of the package's own apk) in final."""
    branch, arch, pkgname = data["branch"], data.get("arch", ""), data["pkgname"]
    who, why = data["who"], data["why"]
    kept = [r for r in intents.rebuilds if (r.branch, r.pkgname) != (branch, pkgname)]
    events = []
    for (where, name), (version, checksum) in sorted(published.items()):
        if name != pkgname or arch not in ("", where):
            continue
        highest = max(
            (
                n
                for i, n in attempts.items()
                if (i.repo.branch, i.repo.arch, i.pkgname, i.version)
                == (branch, where, pkgname, version)
            ),
            default=0,
        )
        kept.append(
            RebuildRequest(branch, where, pkgname, version, checksum, highest, who, why, now)
        )
        message = f"rebuild of {version} asked by {who}: {why}"
        events.append(Event(now, f"{branch}/{where}", pkgname, version, "operator", message))
    if not events:
        where = f"{branch}/{arch}" if arch else branch
        message = f"rebuild asked by {who} refused: nothing of it is published ({why})"
        events.append(Event(now, where, pkgname, "", "operator", message))
    return replace(intents, rebuilds=tuple(kept)), events


def apply_fail_job(
    intents: Intents, data: Mapping[str, Any], now: float
) -> tuple[Intents, list[Event]]:
    """Declare a job dead: plan cancels it and counts it as a failed try."""
    key = JobKey.from_job_id(data["job"])
    dead = DeadJob(key.job_id, data["who"], data["why"], now)
    kept = tuple(d for d in intents.dead_jobs if d.job_id != key.job_id)
    message = f"job {key.job_id} declared dead by {dead.who}: {dead.why}"
    event = Event(
        now,
        str(key.intent.repo),
        key.intent.pkgname,
        key.intent.version,
        "operator",
        message,
        job_id=key.job_id,
    )
    return replace(intents, dead_jobs=(*kept, dead)), [event]


def highest_attempts(jobs: Mapping[JobKey, object]) -> dict[JobIntent, int]:
    result: dict[JobIntent, int] = {}
    for key in jobs:
        result[key.intent] = max(result.get(key.intent, 0), key.attempt)
    return result


def push_retries(
    intents: Intents,
    desired: BranchDesired,
    changed: set[str],
    failing: list[tuple[str, str]],
    attempts: Mapping[JobIntent, int],
    commit: str,
    now: float,
) -> tuple[Intents, list[Event]]:
    """Fresh tries for failing packages whose directory, or the directory of any
    package they need (directly or not), changed in a push."""
    specs = {(k.arch, k.splitrepo, n): s for k, r in desired.repos.items() for n, s in r.items()}
    memo: dict[tuple[str, str, str], str | None] = {}

    def cause(key: tuple[str, str, str], path: tuple[tuple[str, str, str], ...]) -> str | None:
        if key in memo:
            return memo[key]
        spec = specs.get(key)
        found = None
        if spec is not None and key not in path:
            if spec.path in changed:
                found = spec.path
            else:
                for dep in spec.build_deps:
                    found = cause((dep.repo.arch, dep.repo.splitrepo, dep.pkgname), (*path, key))
                    if found:
                        break
        memo[key] = found
        return found

    grants = list(intents.retries)
    events = []
    for arch, pkgname in failing:
        reasons = [
            cause((arch, sr, pkgname), ()) for sr in ("", *{k.splitrepo for k in desired.repos})
        ]
        why = next((r for r in reasons if r), None)
        if why is None:
            continue
        highest = max(
            (
                n
                for i, n in attempts.items()
                if i.repo.branch == desired.branch and i.repo.arch == arch and i.pkgname == pkgname
            ),
            default=0,
        )
        grants = [
            g for g in grants if (g.branch, g.arch, g.pkgname) != (desired.branch, arch, pkgname)
        ]
        message = f"{why} changed in {commit[:12]}: fresh tries"
        grants.append(RetryGrant(desired.branch, arch, pkgname, highest, "push", message, now))
        events.append(Event(now, f"{desired.branch}/{arch}", pkgname, "", "operator", message))
    return replace(intents, retries=tuple(grants)), events
