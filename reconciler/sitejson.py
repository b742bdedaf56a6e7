"""status.json and status/<branch>.json: the site's facts for scripts.

Pure: built from the same SiteInput as the pages; each package row is made once
and shared by the documents.
"""

from __future__ import annotations

import json

from .sitefeeds import badge_state
from .sitemodel import STATES, BranchInfo, SiteInput, branch_summaries, iso, log_href


def status_documents(site: SiteInput) -> dict[str, bytes]:
    """status.json (every branch) and status/<branch>.json: the same facts as the HTML,
    for scripts. Each package row is built once and shared by both documents."""
    summaries = {s.name: s for s in branch_summaries(site)}
    state_names = [str(s) for s in STATES]
    rows: dict[str, list[dict[str, object]]] = {b.name: [] for b in site.branches}
    for s in site.plan.packages:
        rows.setdefault(s.repo.branch, []).append(
            {
                "repo": str(s.repo),
                "branch": s.repo.branch,
                "splitrepo": s.repo.splitrepo,
                "arch": s.repo.arch,
                "pkgname": s.pkgname,
                "version": s.version,
                "state": str(s.state),
                "reason": s.reason,
                "tries": s.tries,
                "max_tries": s.max_tries,
                "log": log_href(None, s.job_id),
                "next_try_at": iso(s.next_try_at),
            }
        )

    def branch_doc(b: BranchInfo) -> dict[str, object]:
        summary = summaries[b.name]
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

    def encode(branches: list[BranchInfo]) -> bytes:
        document = {
            "title": site.title,
            "badge": badge_state(site),
            "states": state_names,
            "branches": {b.name: branch_doc(b) for b in branches},
            "packages": [row for b in branches for row in rows.get(b.name, [])],
        }
        return (json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n").encode()

    documents = {"status.json": encode(list(site.branches))}
    for b in site.branches:
        documents[f"status/{b.name}.json"] = encode([b])
    return documents
