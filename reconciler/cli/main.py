"""The command line: the daemon (`run`) and the operator's tools.

Every subcommand validates its input and exits non-zero with a one-line reason
(exit 2 for a bad configuration or bad arguments, 1 when the work did not
succeed), never with a traceback for bad input.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.cli.hooks import add_subcommands
from reconciler.config.settings import Config, ConfigError, load_config
from reconciler.formats import apkversion
from reconciler.formats.apk import ApkError, read_apk, read_apk_bytes, verify_apk_signature
from reconciler.formats.apkbuild import ApkbuildError, parse_apkbuild, to_json
from reconciler.formats.apkindex import (
    build_index_archive,
    format_index,
    read_index_archive,
    verify_index,
)
from reconciler.formats.keys import KeyFileError, SignatureError, load_public_key
from reconciler.fs.atomicfile import write_bytes
from reconciler.model.progress import PkgState
from reconciler.operator.triggers import TriggerError, parse_trigger

if TYPE_CHECKING:  # the daemon's modules load only for the commands that run it
    from reconciler.loop import PassResult


def _config(args: argparse.Namespace) -> Config:
    return load_config(Path(args.config) if args.config else None)


def summary(result: PassResult) -> str:
    """A short text of what is not published, for `run --once`."""
    lines = []
    for repo in result.plan.repos:
        if repo.phase not in ("published", "empty"):
            lines.append(f"{repo.repo}: {repo.phase} {repo.reason}".rstrip())
    for pkg in result.plan.packages:
        if pkg.state is not PkgState.PUBLISHED:
            lines.append(
                f"  {pkg.repo} {pkg.pkgname} {pkg.version}: {pkg.state} {pkg.reason}".rstrip()
            )
    if result.job_service_error:
        lines.append(f"job service unreachable: {result.job_service_error}")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    from reconciler.loop import Daemon

    daemon = Daemon(_config(args))
    if args.once:
        result = daemon.converge()
        if result.all_published:
            pairs = len(result.plan.packages)
            print(f"converged: every desired package is published ({pairs} package/arch pairs)")
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


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _config(args)
    print(f"{config.source}: OK ({len(config.branches)} branches)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from reconciler.loop import Daemon

    daemon = Daemon(_config(args))
    from reconciler.execute.executor import repo_keys
    from reconciler.observed.scanner import observe
    from reconciler.plan.planner import plan

    observed = observe(daemon.scanner, repo_keys(daemon.config), daemon.jobs, daemon.state.rejected)  # type: ignore[arg-type]
    result = plan(daemon.read_desired(), observed, daemon.settings, time.time())
    counts: dict[str, dict[str, int]] = {}
    for pkg in result.packages:
        row = counts.setdefault(str(pkg.repo), {})
        row[pkg.state] = row.get(pkg.state, 0) + 1
    for repo in result.repos:
        states = ", ".join(f"{n} {s}" for s, n in sorted(counts.get(str(repo.repo), {}).items()))
        print(f"{repo.repo!s:32} {repo.phase:11} {states}  {repo.reason}".rstrip())
    return 0


def cmd_apkbuild(args: argparse.Namespace) -> int:
    result: dict[str, object] = {}
    status = 0
    for name in args.paths:
        path = Path(name)
        file = path / "APKBUILD" if path.is_dir() else path
        try:
            text = file.read_bytes().decode("utf-8")
            rel = f"{file.parent.name}/APKBUILD"
            result[name] = to_json(parse_apkbuild(text, rel))
        except (OSError, UnicodeDecodeError, ApkbuildError) as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            status = 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return status


def cmd_version_compare(args: argparse.Namespace) -> int:
    mode = apkversion.VersionMode(args.mode)
    try:
        result = apkversion.compare(args.a, args.b, mode)
    except apkversion.InvalidVersion as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print({-1: "<", 0: "=", 1: ">"}[result])
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    infos = []
    for path in sorted(directory.glob("*.apk")):
        try:
            infos.append(read_apk(path))
        except ApkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    text = format_index(infos, rewrite_arch=args.rewrite_arch)
    data = build_index_archive(text, description=args.description, mtime=int(time.time()))
    out = Path(args.output) if args.output else directory / "APKINDEX.tar.gz"
    write_bytes(out, data)
    print(f"{out}: {len(infos)} packages")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        key = load_public_key(Path(args.key))
        data = Path(args.file).read_bytes()
    except (OSError, KeyFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            read_index_archive(data, args.file)
            is_index = True
        except ValueError:
            is_index = False
        if is_index:
            name = verify_index(data, key, args.file)
        else:
            read_apk_bytes(data, args.file)
            name = verify_apk_signature(data, key, args.file)
    except (SignatureError, ApkError, ValueError) as exc:
        print(f"{args.file}: BAD: {exc}")
        return 1
    print(f"{args.file}: OK, signed as .SIGN.RSA.{name}")
    return 0


def cmd_operation(args: argparse.Namespace) -> int:
    """Write a manual-operation trigger file; the daemon applies it on its next pass."""
    config = _config(args)
    document: dict[str, object] = {
        "type": args.command,
        "who": args.who or getpass.getuser(),
        "why": args.why,
        "requested_at": time.time(),
    }
    if args.command == "fail-job":
        document["job"] = args.job
    else:
        document["branch"] = args.branch
        document["arch"] = getattr(args, "arch", "") or ""
    if args.command in ("retry", "hold", "release", "rebuild"):
        document["pkgname"] = args.pkgname
    if getattr(args, "expires_hours", None):
        document["expires"] = time.time() + args.expires_hours * 3600
    name = f"{args.command}-{int(time.time() * 1000)}-{os.getpid()}.json"
    try:
        parse_trigger(name, json.dumps(document).encode())
    except TriggerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    directory = config.paths.triggers
    directory.mkdir(parents=True, exist_ok=True)
    write_bytes(directory / f".{name}.tmp", json.dumps(document, indent=1).encode())
    os.replace(directory / f".{name}.tmp", directory / name)
    print(f"{args.command} requested: {directory / name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reconciler", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--once", action="store_true", help="converge once, then exit")
    check = sub.add_parser("check-config", help="validate a configuration file")
    status = sub.add_parser("status", help="per branch/arch summary")
    for p in (run, check, status):
        p.add_argument("--config", "-c", help="YAML file (default: embedded defaults)")
    apkbuild = sub.add_parser("apkbuild", help="parsed fields of APKBUILDs as JSON")
    apkbuild.add_argument("paths", nargs="+")
    vc = sub.add_parser("version-compare", help="compare two apk versions: <, = or >")
    vc.add_argument("a")
    vc.add_argument("b")
    vc.add_argument("--mode", choices=[m.value for m in apkversion.VersionMode], default="3.0")
    index = sub.add_parser("index", help="write APKINDEX.tar.gz for the apks in DIR")
    index.add_argument("dir")
    index.add_argument("--output", "-o")
    index.add_argument("--description", "-d")
    index.add_argument("--rewrite-arch")
    helps = {
        "retry": "give a failed package fresh tries, starting now",
        "hold": "stop building a package; its published apks stay, the rest publishes",
        "release": "end a hold",
        "requeue": "give every failed package of a branch (or branch/arch) fresh tries",
        "rebuild": "build a published package again at the same version and publish that",
        "fail-job": "declare a job dead: it is cancelled and counts as a failed try",
        "remove-branch": "delete the repositories of a branch no longer configured",
    }
    for op, text in helps.items():
        p = sub.add_parser(op, help=text)
        p.add_argument("--config", "-c", help="YAML file (default: embedded defaults)")
        if op == "fail-job":
            p.add_argument("job", help="the job id, as shown on the site")
        else:
            p.add_argument("--branch", required=True)
        if op not in ("fail-job", "remove-branch"):
            p.add_argument("--arch", default="", help="one arch (default: every arch)")
        if op in ("retry", "hold", "release", "rebuild"):
            p.add_argument("pkgname")
        p.add_argument("--why", required=True, help="the reason, shown on the site")
        p.add_argument("--who", help="who asks (default: the current user)")
        if op == "hold":
            p.add_argument("--expires-hours", type=float, help="end the hold by itself")
    verify = sub.add_parser("verify", help="check an index or package signature")
    verify.add_argument("file")
    verify.add_argument("--key", required=True, help="public key (PEM)")
    add_subcommands(sub, COMMANDS)
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "check-config": cmd_check_config,
    "status": cmd_status,
    "apkbuild": cmd_apkbuild,
    "version-compare": cmd_version_compare,
    "index": cmd_index,
    "verify": cmd_verify,
    "retry": cmd_operation,
    "hold": cmd_operation,
    "release": cmd_operation,
    "requeue": cmd_operation,
    "rebuild": cmd_operation,
    "fail-job": cmd_operation,
    "remove-branch": cmd_operation,
}


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        sys.exit(COMMANDS[args.command](args))
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
