"""`reconciler status`: what the daemon last wrote, in the terminal.

It reads `<paths.html_out>/status.json`, the document the daemon writes with
the site, and never writes anything: it works beside a running daemon and on a
host where only the site is. Per branch and repository it prints the phase,
the packages per state, the commit and time it was published from and why it
is not done; then the running jobs, the device images (each with its state,
reason, tries and published date directory) and the problem packages and
images with their reasons. `--json` prints the document itself. Exit 0 when
every desired package is published and no image failed or is retrying, 1
otherwise, 2 when the daemon's last full pass is older
than twice the resync interval (it may be down) or it never wrote the file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from reconciler.cli import Subcommand, config_argument
from reconciler.config.settings import load_config
from reconciler.fs.regularfile import Refused, read_regular
from reconciler.model.errors import InputError

MAX_STATUS_BYTES = 256 * 1024 * 1024
PROBLEM_STATES = ("failed", "broken", "retrying")
STALE = 2  # the exit code for a daemon that may be down (or never ran)


class StatusFileError(InputError):
    """status.json cannot be read or is not what the daemon writes."""


def status(args: argparse.Namespace) -> int:
    config = load_config(Path(args.config) if args.config else None)
    path = config.paths.html_out / "status.json"
    try:
        raw = read_regular(str(path), MAX_STATUS_BYTES, follow_symlinks=True)[1]
    except FileNotFoundError:
        print(f"no status yet: the daemon has not written {path}")
        return STALE
    except (OSError, Refused) as exc:
        raise StatusFileError(f"{path}: cannot read it: {exc}") from exc
    if args.json:
        print(raw.decode("utf-8", errors="replace"), end="")
        return exit_code(_document(raw, path), time.time())[0]
    document = _document(raw, path)
    code, stale = exit_code(document, time.time())
    lines = [*([stale] if stale else []), *status_lines(document)]
    print("\n".join(lines))
    return code


def _document(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise StatusFileError(f"{path}: not a JSON document: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("branches"), dict):
        raise StatusFileError(f"{path}: expected the daemon's status document")
    return document


def exit_code(document: dict[str, Any], now: float) -> tuple[int, str]:
    """(0 all published, 1 not, 2 stale) and the line that says it is stale."""
    last = document.get("last_pass_at_unix")
    limit = document.get("stale_after_seconds")
    if isinstance(last, int | float) and isinstance(limit, int | float) and now - last > limit:
        seen = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(last))
        return STALE, (
            f"the daemon's last full pass was at {seen}, more than {limit:g} s ago:"
            " it may be down, and what follows may be out of date"
        )
    states = [p.get("state") for p in document.get("packages", []) if isinstance(p, dict)]
    failing = [i for i in _images(document) if i.get("state") in PROBLEM_STATES]
    return (0 if all(s == "published" for s in states) and not failing else 1), ""


def _images(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in document.get("images") or [] if isinstance(i, dict)]


def image_name(image: dict[str, Any]) -> str:
    """bpo's `branch:device:ui`, with `:kernel` when one is named."""
    parts = [image.get("branch"), image.get("device"), image.get("ui"), image.get("kernel")]
    return ":".join(str(p) for p in parts if p)


def image_lines(document: dict[str, Any]) -> list[str]:
    """The images block: one line per desired image."""
    images = _images(document)
    if not images:
        return []
    lines = [f"images: {len(images)}"]
    for image in images:
        state = str(image.get("state") or "?")
        tries = (
            f" (try {image.get('tries')}/{image.get('max_tries')})"
            if state in PROBLEM_STATES and image.get("max_tries")
            else ""
        )
        where = f" [{image['date']}]" if image.get("date") else ""
        reason = f": {image['reason']}" if image.get("reason") else ""
        lines.append(
            f"  {image_name(image):36} {image.get('arch', '?'):10} {state}{reason}{tries}{where}"
        )
    return lines


def status_lines(document: dict[str, Any]) -> list[str]:
    """The terminal table of one status document. Pure."""
    lines: list[str] = []
    packages = [p for p in document.get("packages", []) if isinstance(p, dict)]
    for name, branch in sorted(document["branches"].items()):
        if not isinstance(branch, dict):
            continue
        commit = str(branch.get("commit") or "-")[:12]
        lines.append(f"{name}  (pmaports {commit})")
        for repo, row in sorted((branch.get("repos") or {}).items()):
            counts = row.get("counts") or {}
            text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if n)
            published = str(row.get("published_commit") or "-")[:12]
            when = row.get("published_at") or "never"
            lines.append(
                f"  {repo:28} {row.get('phase', '?'):10} {text or 'nothing'}"
                f"  [published {published} at {when}]"
            )
            if row.get("reason"):
                lines.append(f"  {'':28} {row['reason']}")
    running = [p for p in packages if p.get("state") == "building"]
    if running:
        lines.append(f"running: {len(running)}")
        lines += [f"  {p.get('repo')} {p.get('pkgname')} {p.get('version')}" for p in running]
    for kind in ("holds", "pauses"):
        for intent in document.get(kind) or []:
            if not isinstance(intent, dict):
                continue
            where = "/".join(x for x in (intent.get("branch"), intent.get("arch")) if x)
            what = f"{where} {intent.get('pkgname', '')}".rstrip()
            until = f" until {intent['expires']}" if intent.get("expires") else ""
            lines.append(
                f"{kind[:-1]}: {what} by {intent.get('who')} since {intent.get('since')}"
                f"{until}: {intent.get('why')}"
            )
    lines += image_lines(document)
    problems = [p for p in packages if p.get("state") in PROBLEM_STATES]
    bad_images = [i for i in _images(document) if i.get("state") in PROBLEM_STATES]
    if problems or bad_images:
        lines.append(f"problems: {len(problems) + len(bad_images)}")
        lines += [
            f"  {p.get('repo')} {p.get('pkgname')} {p.get('version') or '?'}: "
            f"{p.get('state')}: {p.get('reason')}"
            for p in problems
        ]
        lines += [
            f"  image {image_name(i)} ({i.get('arch')}): {i.get('state')}: {i.get('reason')}"
            for i in bad_images
        ]
    return lines


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print status.json as it is")
    config_argument(parser)


SUBCOMMANDS = {
    "status": Subcommand(
        "what the daemon last wrote: per branch and repository, running jobs, problems",
        _arguments,
        status,
    ),
}
