"""status.json, status/<branch>.json and the package documents: the site's facts for scripts.

Pure: built from the same SiteInput and summaries as the pages. `status.json`
has every branch's summary (counts per state and repository, commits), the
holds and pauses in force, the desired device images (`images`: branch, device,
ui, kernel, arch, slot, state, reason, tries, max_tries, log, date), when the
daemon last made a full pass (`last_pass_at`, ISO, and `last_pass_at_unix`)
with the age after which that means it may be down (`stale_after_seconds`), and
under `packages` every package that is not published (what needs attention, and
what `reconciler status` reads); `status/<branch>.json` is the same for one
branch. Every package, published ones too, is in its branch's package documents
(`status/<branch>/<page>.json`, listed under the branch's `package_documents`),
one per page of the branch's grid (site.grid), so that one changed package
rewrites a document of bounded size: at Alpine's size all packages are tens of
megabytes. A package's row says what it waits for (`needs`: one requirement
each, which the queue page groups by). Rows are encoded straight from the
statuses and spliced in; the bytes are exactly `json.dumps(document,
sort_keys=True, separators=(",", ":"))` (a test checks).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from json.encoder import encode_basestring_ascii

from reconciler.model.names import RepoKey
from reconciler.model.progress import ImageStatus, PkgStatus
from reconciler.operator.intents import Hold, Pause
from reconciler.site.model import STATES, BranchInfo, BranchSummary, SiteInput, iso, log_href

STATE_NAMES = [str(s) for s in STATES]
EMPTY = '""'
COMMA = ","


def dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def package_document_path(branch: str, key: str) -> str:
    """The package document of the grid page `key` ("" for a branch on one page: "all")."""
    return f"status/{branch}/{key or 'all'}.json"


class PackageRows:
    """Encodes package rows as dumps() makes of {"repo": ..., "branch": ..., ...},
    keys sorted, without building the dicts; what a repository's rows repeat is
    encoded once (hundreds of thousands of rows at Alpine's size)."""

    def __init__(self) -> None:
        self._repos: dict[
            int, tuple[RepoKey, str, str]
        ] = {}  # id(repo) -> repo (kept), head, middle
        self._states = {state: encode_basestring_ascii(str(state)) for state in STATES}

    def _repo(self, repo: RepoKey) -> tuple[RepoKey, str, str]:
        found = self._repos.get(id(repo))
        if found is None or found[0] is not repo:
            quote = encode_basestring_ascii
            found = self._repos[id(repo)] = (
                repo,
                f'{{"arch":{quote(repo.arch)},"branch":{quote(repo.branch)},"log":',
                f',"repo":{quote(str(repo))},"splitrepo":{quote(repo.splitrepo)},"state":',
            )
        return found

    def row(self, s: PkgStatus) -> str:
        return self.rows((s,))

    def rows(self, statuses: Iterable[PkgStatus | None]) -> str:
        """The rows of `statuses` (None: none), comma-separated: the inside of an array."""
        quote = encode_basestring_ascii  # what json.dumps does to a str
        states, repos = self._states, self._repos
        found: list[str] = []
        for s in statuses:
            if s is None:
                continue
            repo = s.repo
            known = repos.get(id(repo))
            _, head, middle = known if known is not None and known[0] is repo else self._repo(repo)
            job, due, needs = s.job_id, s.next_try_at, s.needs
            found.append(
                f"{head}{quote(log_href(None, job)) if job else EMPTY}"
                f',"max_tries":{int(s.max_tries)}'
                f',"needs":{f"[{COMMA.join([quote(n) for n in needs])}]" if needs else "[]"}'
                f',"next_try_at":{quote(iso(due)) if due else EMPTY}'
                f',"pkgname":{quote(s.pkgname)},"reason":{quote(s.reason)}'
                f'{middle}{states[s.state]},"tries":{int(s.tries)},"version":{quote(s.version)}}}'
            )
        return COMMA.join(found)


def package_document(branch: str, rows: str) -> bytes:
    """A package document: `rows`, the inside of its `packages` array."""
    return f'{{"branch":{dumps(branch)},"packages":[{rows}]}}\n'.encode()


def status_documents(
    site: SiteInput,
    summaries: tuple[BranchSummary, ...],
    badge: str,
    open_rows: Mapping[str, str],
    package_documents: Mapping[str, tuple[str, ...]],
    branches: Collection[str] | None = None,
) -> dict[str, bytes]:
    """status.json (every branch) and status/<branch>.json (of `branches`, default
    all): the same facts as the HTML; `open_rows` are each branch's packages that
    are not published (the inside of a JSON array), `package_documents` the paths
    of each branch's package documents."""
    by_name = {s.name: s for s in summaries}
    seen = site.last_pass_at

    def encode(branches: list[BranchInfo]) -> bytes:
        # The keys in sorted order, as sort_keys writes them.
        names = {b.name for b in branches}
        listed = ",".join(open_rows[b.name] for b in branches if open_rows.get(b.name))
        docs = {
            b.name: _branch_doc(b, by_name[b.name], package_documents.get(b.name, ()))
            for b in branches
        }
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
            f',"states":{dumps(STATE_NAMES)}'
            f',"title":{dumps(site.title)}}}\n'
        )
        return text.encode()

    documents = {"status.json": encode(list(site.branches))}
    for b in site.branches:
        if branches is None or b.name in branches:
            documents[f"status/{b.name}.json"] = encode([b])
    return documents


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


def _branch_doc(
    b: BranchInfo, summary: BranchSummary, package_documents: tuple[str, ...]
) -> dict[str, object]:
    state_names = STATE_NAMES
    return {
        "ignore_errors": b.ignore_errors,
        "commit": b.commit,
        "published_commit": summary.published_commit,
        "counts": dict(zip(state_names, summary.counts, strict=True)),
        "package_documents": list(package_documents),
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
