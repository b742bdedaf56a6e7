"""What keeps a job's processes together and kills them all.

A local job is a runner process and, under it, `bash script.sh` and whatever that
starts. A script (or a build tool it runs) may daemonize: `setsid()`, fork again,
close every inherited fd. Neither a process group nor the runner's lock then
reaches it, and once the runner is gone (SIGKILL, OOM) nothing would stop it.

**Mechanism: one cgroup v2 per job.** The runner makes a leaf
`reconciler-job-<job id>-<hash of the job directory>` under its own cgroup (the
`0::` line of /proc/self/cgroup, below the cgroup2 mount found in
/proc/self/mountinfo), records the leaf's path in the job directory (`cgroup`,
written before the leaf exists, so a crash never leaves an unrecorded leaf; not
synced, as no machine crash leaves a cgroup behind), and
the script's process joins it between fork and exec (`JobCgroup.join_self`, the
runner's preexec step): the script runs no instruction outside it, and no
descendant can leave it, whatever sessions it makes or fds it closes (moving out
needs write access to an ancestor's cgroup.procs; a job running as root could,
which is no worse than root jobs being able to kill the daemon). Killing is
`cgroup.kill` (or, before Linux 5.14, freeze and SIGKILL every pid in
cgroup.procs), then waiting for `cgroup.events` to say `populated 0`, then
rmdir. The runner does that when the script ends or times out; the job service
does it for a job whose runner vanished before it declares the job lost, on
cancel, and when archiving a finished job (so leaves left by crashes do not pile
up). Under systemd, give the daemon's unit `Delegate=yes` so its cgroup is its to
divide.

**Fallback, when no cgroup2 hierarchy is writable** (not root, no delegation,
v1-only hosts) or when `RECONCILER_NO_CGROUP` is set in the runner's
environment: the runner makes itself a child subreaper (prctl
PR_SET_CHILD_SUBREAPER), so orphaned descendants, setsid'd or not, are
re-parented to it; when the script ends or times out it SIGKILLs and reaps every
child it has until none is left; and the script inherits the lock fd, so a
killed runner whose script still runs does not count as lost. What the fallback
cannot do: once the runner itself is SIGKILLed, its orphans go to init, and a
grandchild that called setsid() and closed the lock fd then escapes every check
(it is neither in the script's process group, nor holding the lock, nor anyone's
to reap). Only a cgroup catches that; the runner's log names which mechanism a job
ran under.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import select
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from reconciler.fs.atomicfile import remove, write_fresh, write_text
from reconciler.jobs.service import JobServiceError

RECORD = "cgroup"  # in the job directory: the path of the job's cgroup, if it has one
CANCEL_MARK = "cancel"  # in the job directory: the job service cancelled the job
PID_FILE = "pid"  # in the job directory: the script's pid (and process group)
LEAF_PREFIX = "reconciler-job-"
NO_CGROUP_ENV = "RECONCILER_NO_CGROUP"  # set (non-empty): use the fallback
KILL_TIMEOUT = 10.0  # seconds for killed processes to be gone
PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>
_POLL_STEP = 0.05  # at most this long between looks, should a notification be missed


class ContainmentError(JobServiceError):
    """A job's processes could not be held together or killed; says which job and path."""


@dataclass(frozen=True, slots=True)
class JobCgroup:
    """One job's cgroup v2 leaf: every process of the job, and only those."""

    path: Path
    job_id: str

    def join_self(self) -> None:
        """Move the calling process in. The runner's child calls this before exec."""
        fd = os.open(self.path / "cgroup.procs", os.O_WRONLY)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)

    def pids(self) -> list[int]:
        """The processes in the cgroup now (none if it is gone)."""
        try:
            text = (self.path / "cgroup.procs").read_text(encoding="ascii")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ContainmentError(f"job {self.job_id}: cannot read {self.path}: {exc}") from exc
        return [int(line) for line in text.split()]

    def populated(self) -> bool:
        try:
            text = (self.path / "cgroup.events").read_text(encoding="ascii")
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ContainmentError(f"job {self.job_id}: cannot read {self.path}: {exc}") from exc
        return "populated 1" in text.splitlines()

    def kill(self) -> None:
        """SIGKILL every process in the cgroup, without waiting for them to be gone."""
        if not self.path.is_dir():
            return
        try:
            if (self.path / "cgroup.kill").exists():
                (self.path / "cgroup.kill").write_text("1\n", encoding="ascii")
                return
            # Before Linux 5.14: frozen processes cannot fork while we kill them.
            (self.path / "cgroup.freeze").write_text("1\n", encoding="ascii")
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            (self.path / "cgroup.freeze").write_text("0\n", encoding="ascii")
        except FileNotFoundError:
            return  # removed meanwhile: nothing left to kill
        except OSError as exc:
            raise ContainmentError(f"job {self.job_id}: cannot kill {self.path}: {exc}") from exc

    def kill_and_wait(self, timeout: float = KILL_TIMEOUT) -> None:
        """Kill everything in the cgroup and return once it is empty."""
        deadline = time.monotonic() + timeout
        while True:
            self.kill()
            if _wait_unpopulated(self.path / "cgroup.events", min(deadline, time.monotonic() + 1)):
                return
            if time.monotonic() >= deadline:
                raise ContainmentError(
                    f"job {self.job_id}: processes {self.pids()} still in {self.path} "
                    f"{timeout:g} s after SIGKILL"
                )

    def remove(self, timeout: float = KILL_TIMEOUT) -> None:
        """Kill everything in the cgroup, wait until it is empty, remove it."""
        deadline = time.monotonic() + timeout
        while True:
            self.kill_and_wait(max(deadline - time.monotonic(), 0.0))
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:  # EBUSY: a process joined after the last look
                if time.monotonic() >= deadline:
                    raise ContainmentError(
                        f"job {self.job_id}: cannot remove {self.path}: {exc}"
                    ) from exc


@dataclass(frozen=True, slots=True)
class Containment:
    """How the runner holds one job together: a cgroup, or (fallback) itself as
    subreaper. `why` says which and why, for the job's log."""

    job_id: str
    cgroup: JobCgroup | None
    why: str

    @property
    def script_keeps_lock(self) -> bool:
        """In the fallback the script inherits the lock: it then proves the job alive."""
        return self.cgroup is None

    def preexec(self) -> None:
        """Runs in the script's process between fork and exec."""
        if self.cgroup is not None:
            self.cgroup.join_self()

    def kill_all(self, script_pid: int) -> None:
        """Stop the whole job now (timeout): every process of it, the script first."""
        if self.cgroup is not None:
            self.cgroup.kill()
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(script_pid, signal.SIGKILL)

    def finish(self) -> None:
        """After the script was reaped: kill what it left running and wait until
        nothing of the job is left; remove the cgroup (its record stays, as history)."""
        if self.cgroup is not None:
            self.cgroup.remove()
        else:
            kill_children(self.job_id)


def contain(job_dir: Path, job_id: str) -> Containment:
    """The runner's containment for this job: a fresh cgroup, else the fallback."""
    if os.environ.get(NO_CGROUP_ENV):
        return fall_back(job_id, f"{NO_CGROUP_ENV} is set")
    try:
        cgroup = create_cgroup(job_dir, job_id)
    except ContainmentError as exc:
        return fall_back(job_id, str(exc))
    return Containment(job_id, cgroup, f"cgroup {cgroup.path}")


def fall_back(job_id: str, reason: str) -> Containment:
    """The subreaper fallback (see the module docstring for what it cannot catch)."""
    become_subreaper(job_id)
    return Containment(job_id, None, f"subreaper, without a cgroup ({reason})")


def create_cgroup(job_dir: Path, job_id: str) -> JobCgroup:
    """Record, then make, the job's leaf under the calling process's cgroup."""
    parent = own_cgroup()
    if parent is None:
        raise ContainmentError(f"job {job_id}: no cgroup2 hierarchy of this process is mounted")
    digest = hashlib.sha256(str(job_dir.resolve()).encode()).hexdigest()[:12]
    cgroup = JobCgroup(parent / f"{LEAF_PREFIX}{job_id}-{digest}", job_id)
    try:
        write_fresh(job_dir / RECORD, f"{cgroup.path}\n".encode())
        cgroup.path.mkdir(exist_ok=True)  # exists: this runner's own, from a retry
        if not (cgroup.path / "cgroup.procs").is_file():
            raise OSError(f"{cgroup.path} is not a cgroup2 directory")
    except OSError as exc:
        with contextlib.suppress(OSError):
            cgroup.path.rmdir()
        with contextlib.suppress(OSError):
            remove(job_dir / RECORD)
        raise ContainmentError(f"job {job_id}: cannot create {cgroup.path}: {exc}") from exc
    return cgroup


def drop_cgroup(job_dir: Path, cgroup: JobCgroup) -> None:
    """Undo create_cgroup (the script could not join it): remove leaf and record."""
    cgroup.remove()
    try:
        remove(job_dir / RECORD)
    except OSError as exc:
        raise ContainmentError(
            f"job {cgroup.job_id}: cannot remove {job_dir / RECORD}: {exc}"
        ) from exc


def recorded_cgroup(job_dir: Path, job_id: str) -> JobCgroup | None:
    """The cgroup the job's runner recorded, or None (the fallback, or an older
    runner). A record that names anything but this job's leaf in a cgroup2
    hierarchy is refused: the daemon never kills by a path a script could forge."""
    record = job_dir / RECORD
    try:
        text = record.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ContainmentError(f"job {job_id}: cannot read {record}: {exc}") from exc
    path = Path(text)
    mounts = cgroup2_mounts(_read("/proc/self/mountinfo"))
    if not (
        path.is_absolute()
        and ".." not in path.parts
        and path.name.startswith(f"{LEAF_PREFIX}{job_id}-")
        and any(path.parent.is_relative_to(mount) for mount, _root in mounts)
    ):
        raise ContainmentError(f"job {job_id}: {record} names no cgroup of this job: {text!r}")
    return JobCgroup(path, job_id)


def cancel(job_dir: Path, job_id: str) -> None:
    """Stop a job on request: mark it cancelled (for its runner's status), then
    kill every process of it. A job with no recorded cgroup: its script's group."""
    if not job_dir.is_dir() or (job_dir / "status.json").exists():
        return
    write_text(job_dir / CANCEL_MARK, "cancelled\n")
    cgroup = recorded_cgroup(job_dir, job_id)
    if cgroup is not None:
        cgroup.kill()
        return
    try:
        pid = int((job_dir / PID_FILE).read_text(encoding="ascii").strip())
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError):
        return  # not started yet, or already gone


# --- finding the cgroup2 hierarchy ---------------------------------------------------


def own_cgroup() -> Path | None:
    """The calling process's cgroup v2 directory, or None if none is mounted."""
    relative = cgroup_of(_read("/proc/self/cgroup"))
    if relative is None:
        return None
    for mount, root in cgroup2_mounts(_read("/proc/self/mountinfo")):
        if relative == root or relative.startswith(root.rstrip("/") + "/"):
            inside = relative[len(root) :].strip("/")
            return mount / inside if inside else mount
    return None


def cgroup_of(proc_cgroup: str) -> str | None:
    """The unified hierarchy's path from /proc/<pid>/cgroup (its `0::` line)."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            path = line[3:]
            return path if path.startswith("/") and not path.endswith(" (deleted)") else None
    return None


def cgroup2_mounts(mountinfo: str) -> list[tuple[Path, str]]:
    """Every cgroup2 mount in /proc/<pid>/mountinfo: (mount point, root within
    the hierarchy)."""
    found: list[tuple[Path, str]] = []
    for line in mountinfo.splitlines():
        fields, sep, rest = line.partition(" - ")
        parts = fields.split()
        if not sep or len(parts) < 5 or rest.split()[:1] != ["cgroup2"]:
            continue
        found.append((Path(_unescape(parts[4])), _unescape(parts[3])))
    return found


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def _wait_unpopulated(events: Path, deadline: float) -> bool:
    """Wait until cgroup.events says `populated 0` (True) or the deadline passes.
    The kernel wakes poll() on every change of the file."""
    try:
        fd = os.open(events, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI | select.POLLERR)
        while True:
            os.lseek(fd, 0, os.SEEK_SET)
            if b"populated 0" in os.read(fd, 4096):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            poller.poll(min(remaining, _POLL_STEP) * 1000)
    finally:
        os.close(fd)


# --- the fallback: the runner as subreaper ----------------------------------------------


def become_subreaper(job_id: str) -> None:
    """Make the calling process adopt its orphaned descendants (prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: int = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if result != 0:
        errno = ctypes.get_errno()
        raise ContainmentError(
            f"job {job_id}: prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(errno)}"
        )


def kill_children(job_id: str, timeout: float = KILL_TIMEOUT) -> None:
    """SIGKILL and reap every child of the calling subreaper until it has none:
    the descendants of a killed child are re-parented to it and go the same way."""
    deadline = time.monotonic() + timeout
    me = os.getpid()
    while True:
        for pid in children_of(me):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            return  # no child left, alive or dead
        if time.monotonic() >= deadline:
            raise ContainmentError(
                f"job {job_id}: children {children_of(me)} of runner {me} still alive "
                f"{timeout:g} s after SIGKILL"
            )
        time.sleep(0.005)  # the killed ones are on their way out


def children_of(parent: int) -> list[int]:
    """The pids whose parent is `parent`, from /proc/<pid>/stat."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": state, ppid, ...
        if int(fields[1]) == parent and fields[0] != "Z":
            found.append(int(entry.name))
    return found
