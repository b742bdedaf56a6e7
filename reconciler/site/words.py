"""The plan and its jobs in the words a maintainer reads.

Pure: turns actions into sentences ("start build foo 1.2-r0 for main/aarch64,
try 1"), a job's identity into a label ("build foo 1.2-r0 for main/aarch64, try
2": job ids stay in links and attributes, never a label), a label and a reason
into one phrase without a doubled word at the seam ("blocked" and "blocked by
foo" make "blocked by foo", not "blocked: blocked by foo"), a requirement into a
heading ("needs foo", "blocked by foo (failed)") and a repository's phase and
reason into what it waits for before it publishes.
"""

from __future__ import annotations

from reconciler.model.jobs import JobKey, JobKind
from reconciler.model.progress import PkgState, RepoPhase, RepoStatus
from reconciler.plan.actions import (
    Action,
    CancelJob,
    CollectBuild,
    MirrorFinal,
    PruneFinal,
    PruneImages,
    PruneWip,
    PublishFinal,
    PublishImage,
    ReindexWip,
    RemoveBranch,
    RemoveImages,
    SeedFromOrigin,
    SubmitBuild,
    SubmitImage,
    SubmitSign,
    WriteSymlinkRepo,
)
from reconciler.plan.planner import Plan

# Not counted as builds still to come: done, or not built until a person acts.
NOT_BUILT_AGAIN = frozenset({PkgState.PUBLISHED, PkgState.BUILT, PkgState.HELD, PkgState.BROKEN})
SHORT_HASH = 12  # characters of an index hash in a sign job's label
# What a queued package says when all it lacks is a free slot: not repeated on the queue page.
FREE_SLOT = "ready, waiting for a free job slot"


def job_label(key: JobKey) -> str:
    """A job as a person names it: kind, package, version, repository and try (an
    image job: the device, then its slot and UI from its version)."""
    intent = key.intent
    if intent.kind is JobKind.BUILD:
        what = f"build {intent.pkgname} {intent.version}"
    elif intent.kind is JobKind.SIGN:
        what = f"sign the index {intent.version[:SHORT_HASH]}"
    else:
        what = f"{intent.kind} {intent.pkgname} {intent.version.replace('~', ' ')}"
    return f"{what} for {intent.repo}, try {key.attempt}"


def job_id_label(job_id: str) -> str:
    """job_label of a job id; an id that is not one (a job service's own) as it is."""
    try:
        return job_label(JobKey.from_job_id(job_id))
    except ValueError:
        return f"job {job_id}"


PUNCTUATION = " :,;.-\u2014()"


def _word(text: str) -> str:
    return text.strip(PUNCTUATION).lower()


def joined(label: str, text: str, separator: str = ": ") -> str:
    """`label` and `text` as one phrase: "label: text", but without saying a word
    twice where they meet ("blocked" + "blocked by foo" -> "blocked by foo",
    "failed" + "failed, try 2 of 3" -> "failed, try 2 of 3"), and the label alone
    when there is no text."""
    if not text:
        return label
    if not label:
        return text
    head, _, last = label.rpartition(" ")
    word = _word(last)
    if not word or text[: len(word)].lower() != word:  # the usual case, quickly
        return f"{label}{separator}{text}"
    if _word(text.split(" ", 1)[0]) == word:
        return f"{head} {text}" if head else text
    return f"{label}{separator}{text}"


def describe_action(action: Action) -> str:
    match action:
        case SubmitBuild(key=key):
            return f"start {job_label(key)}"
        case CollectBuild(spec=spec):
            return f"collect the packages of {spec.pkgname} {spec.version} for {spec.repo}"
        case ReindexWip(repo=repo):
            return f"re-index the WIP repository {repo}"
        case PruneWip(repo=repo, filenames=names, why=why):
            return f"remove {len(names)} apk(s) from WIP {repo} ({why})"
        case WriteSymlinkRepo(repo=repo, from_wip=wip, from_final=final):
            return f"prepare the index of {repo}: {len(wip)} new and {len(final)} published apk(s)"
        case SubmitSign(key=key):
            return f"start {job_label(key)}"
        case PublishFinal(repo=repo):
            return f"publish {repo}"
        case CancelJob(key=key, why=why):
            return f"cancel {job_label(key)} ({why})"
        case MirrorFinal(repo=repo):
            return f"copy {repo} to the mirror"
        case PruneFinal(repo=repo, filenames=names):
            return f"remove {len(names)} unlisted apk(s) from final {repo}"
        case SeedFromOrigin(repo=repo, origin=origin, filenames=names):
            return f"copy {len(names)} apk(s) published in {origin} into WIP {repo}"
        case RemoveBranch(branch=branch, why=why):
            return f"remove the repositories of {branch} ({why})"
        case SubmitImage(key=key):
            return f"start {job_label(key)}"
        case PublishImage(job=job, image=image):
            return f"publish the image of {image.target} for {image.arch} ({job_label(job.key)})"
        case PruneImages(release=release, device=device, ui=ui, dates=dates, why=why):
            return f"remove {len(dates)} image(s) of {device} {ui} for {release} ({why})"
        case RemoveImages(release=release, device=device, ui=ui, why=why):
            what = f"{device} {ui}" if ui else device
            return f"remove every image of {what} for {release} ({why})"
    return type(action).__name__


def describe_actions(plan: Plan) -> tuple[str, ...]:
    """What this pass did, one sentence per action."""
    return tuple(describe_action(a) for a in plan.actions)


# --- the queue page -------------------------------------------------------------


def publish_text(repo: RepoStatus, left: int) -> str:
    """ "building; 3 packages still to build", "blocked: 1 failed package (foo)"."""
    text = joined(str(repo.phase), repo.reason)
    if repo.phase is RepoPhase.BUILDING and left:
        text = joined(text, f"{left} package{'s' if left != 1 else ''} still to build", "; ")
    return text
