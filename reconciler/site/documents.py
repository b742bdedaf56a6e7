"""status.json and status/<branch>.json: the site's facts for scripts.

Pure: built from the same SiteInput and summaries as the pages. The package rows
of each branch, nearly all of either document, are encoded once, straight from
the statuses, and spliced into both documents; the bytes are exactly
`json.dumps(document, sort_keys=True, separators=(",", ":"))` (a test checks).
A package's row says what it waits for (`needs`: one requirement each, which
the queue page groups by). Besides the packages and branches: the holds and
pauses in force, the desired device images (`images`: branch, device, ui,
kernel, arch, slot, state, reason, tries, max_tries, log, date), and when the
daemon last made a full pass (`last_pass_at`, ISO, and `last_pass_at_unix`)
with the age after which that means it may be down (`stale_after_seconds`).
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii

from reconciler.model.names import RepoKey
from reconciler.model.progress import ImageStatus
from reconciler.operator.intents import Hold, Pause
from reconciler.site.model import STATES, BranchInfo, BranchSummary, SiteInput, iso, log_href


def dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def status_documents(
    site: SiteInput, summaries: tuple[BranchSummary, ...], badge: str
) -> dict[str, bytes]:
    """status.json (every branch) and status/<branch>.json: the same facts as the HTML."""
    by_name = {s.name: s for s in summaries}
    state_names = [str(s) for s in STATES]
    packages = _package_rows(site)
    seen = site.last_pass_at

    def encode(branches: list[BranchInfo]) -> bytes:
        # The keys in sorted order, as sort_keys writes them.
        names = {b.name for b in branches}
        listed = ",".join(packages[b.name] for b in branches if packages[b.name])
        docs = {b.name: _branch_doc(b, by_name[b.name], state_names) for b in branches}
        holds = [_intent_doc(h) for h in site.holds if h.branch in names]
        pauses = [_intent_doc(p) for p in site.pauses if p.branch in names]
        images = [_image_doc(i) for i in site.plan.images if i.target.branch in names]
        text = (
            f'{{"badge":{dumps(badge)}'
            f',"branches":{dumps(docs)}'
            f',"holds":{dumps(holds)}'
            f',"images":{dumps(images)}'
            f',"last_pass_at":{dumps(iso(seen) if seen is not None else None)}'
            f',"last_pass_at_unix":{dumps(seen)}'
            f',"packages":[{listed}]'
            f',"pauses":{dumps(pauses)}'
            f',"stale_after_seconds":{dumps(site.stale_after_seconds)}'
            f',"states":{dumps(state_names)}'
            f',"title":{dumps(site.title)}}}\n'
        )
        return text.encode()

    documents = {"status.json": encode(list(site.branches))}
    for b in site.branches:
        documents[f"status/{b.name}.json"] = encode([b])
    return documents


def _package_rows(site: SiteInput) -> dict[str, str]:
    """Each configured branch's package rows as the inside of a JSON array: what
    dumps() makes of each row {"repo": ..., "branch": ..., ...}, keys sorted,
    without building the dicts."""
    rows: dict[str, list[str]] = {b.name: [] for b in site.branches}
    quote = encode_basestring_ascii  # what json.dumps does to a str
    repo: RepoKey | None = None
    found: list[str] | None = None
    head = middle = ""
    for s in site.plan.packages:
        if s.repo is not repo:  # statuses come grouped by repository
            repo = s.repo
            found = rows.get(repo.branch)  # None: a branch no longer configured, hidden
            head = f'{{"arch":{quote(repo.arch)},"branch":{quote(repo.branch)},"log":'
            middle = f',"repo":{quote(str(repo))},"splitrepo":{quote(repo.splitrepo)},"state":'
        if found is None:
            continue
        log = quote(log_href(None, s.job_id)) if s.job_id else '""'
        next_try = quote(iso(s.next_try_at)) if s.next_try_at else '""'
        needs = f"[{','.join([quote(n) for n in s.needs])}]" if s.needs else "[]"
        found.append(
            f'{head}{log},"max_tries":{int(s.max_tries)},"needs":{needs}'
            f',"next_try_at":{next_try}'
            f',"pkgname":{quote(s.pkgname)},"reason":{quote(s.reason)}{middle}'
            f'{quote(s.state)},"tries":{int(s.tries)},"version":{quote(s.version)}}}'
        )
    return {name: ",".join(branch_rows) for name, branch_rows in rows.items()}


def _image_doc(image: ImageStatus) -> dict[str, object]:
    """A desired image: its identity, state and reason, tries, log and published
    date directory ("" while none)."""
    t = image.target
    return {
        "branch": t.branch,
        "device": t.device,
        "ui": t.ui,
        "kernel": t.kernel,
        "arch": image.arch,
        "slot": t.slot,
        "state": image.state.value,
        "reason": image.reason,
        "tries": image.tries,
        "max_tries": image.max_tries,
        "log": log_href(None, image.job_id),
        "date": image.date,
    }


def _intent_doc(intent: Hold | Pause) -> dict[str, object]:
    """A hold or pause in force: times as ISO ("" for no end)."""
    doc: dict[str, object] = {
        "branch": intent.branch,
        "arch": intent.arch,
        "who": intent.who,
        "why": intent.why,
        "since": iso(intent.since),
        "expires": iso(intent.expires),
    }
    if isinstance(intent, Hold):
        doc["pkgname"] = intent.pkgname
    return doc


def _branch_doc(b: BranchInfo, summary: BranchSummary, state_names: list[str]) -> dict[str, object]:
    return {
        "ignore_errors": b.ignore_errors,
        "commit": b.commit,
        "published_commit": summary.published_commit,
        "counts": dict(zip(state_names, summary.counts, strict=True)),
        "repos": {
            r.repo: {
                "phase": r.phase,
                "reason": r.reason,
                "published_commit": r.published_commit,
                "published_at": r.published_at,
                "counts": dict(zip(state_names, r.counts, strict=True)),
            }
            for r in summary.repos
        },
    }
