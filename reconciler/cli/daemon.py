"""The daemon's subcommands: `run` and `check-config`.

The daemon's modules load only for the commands that run it.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.cli import Subcommand, config_argument
from reconciler.config.settings import Config, load_config
from reconciler.fs.instance_lock import InstanceLock
from reconciler.model.progress import PkgState

if TYPE_CHECKING:
    from reconciler.loop import Daemon, PassResult


def read_config(args: argparse.Namespace) -> Config:
    return load_config(Path(args.config) if args.config else None)


def summary(result: PassResult) -> str:
    """A short text of what is not published (packages, then device images), for
    `run --once`."""
    from reconciler.site.words import joined

    lines = [f"problem: {problem}" for problem in result.problems]
    for repo in result.plan.repos:
        if repo.phase not in ("published", "empty"):
            lines.append(f"{repo.repo}: {joined(repo.phase, repo.reason)}")
    for pkg in result.plan.packages:
        if pkg.state is not PkgState.PUBLISHED:
            lines.append(
                f"  {pkg.repo} {pkg.pkgname} {pkg.version}: {joined(pkg.state, pkg.reason)}"
            )
    lines += image_lines(result)
    if result.job_service_error:
        lines.append(f"job service unreachable: {result.job_service_error}")
    return "\n".join(lines)


def image_lines(result: PassResult) -> list[str]:
    """The device images not published yet, one line each with state and reason."""
    from reconciler.site.words import joined

    lines = []
    for image in result.plan.images:
        if image.state is not PkgState.PUBLISHED:
            t = image.target
            name = ":".join(x for x in (t.branch, t.device, t.ui, t.kernel) if x)
            lines.append(f"  image {name} ({image.arch}): {joined(image.state, image.reason)}")
    return lines


def run(args: argparse.Namespace) -> int:
    from reconciler.loop import Daemon

    config = read_config(args)
    with InstanceLock(config.paths.data):
        return _run(Daemon(config), once=args.once)


def _run(daemon: Daemon, *, once: bool) -> int:
    if once:
        result = daemon.converge()
        if result.all_published:
            pairs = len(result.plan.packages)
            print(f"converged: every desired package is published ({pairs} package/arch pairs)")
            images = image_lines(result)
            if images:
                print("device images not published yet:\n" + "\n".join(images))
            return 0
        print("not converged:\n" + summary(result))
        return 1

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # leave the loop the way Ctrl-C does

    signal.signal(signal.SIGTERM, stop)
    try:
        daemon.run_forever()
    except KeyboardInterrupt:
        print("stopped")
    return 0


def check_config(args: argparse.Namespace) -> int:
    config = read_config(args)
    print(f"{config.source}: OK ({len(config.branches)} branches)")
    return 0


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="converge once, then exit")
    config_argument(parser)


SUBCOMMANDS = {
    "run": Subcommand("run the daemon", _run_arguments, run),
    "check-config": Subcommand("validate a configuration file", config_argument, check_config),
}
