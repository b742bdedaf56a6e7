"""The format tools: `apkbuild`, `version-compare`, `index` and `verify`.

They read and write files like abuild and apk-tools do, with reconciler's own
parsers and writers, and need no configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from reconciler.cli import Subcommand
from reconciler.formats import apkversion
from reconciler.formats.apk import ApkError, read_apk_bytes, verify_apk_signature
from reconciler.formats.apkbuild import ApkbuildError, parse_apkbuild, to_json
from reconciler.formats.apkindex import (
    build_index_archive,
    format_index,
    read_index_archive,
    verify_index,
)
from reconciler.formats.keys import KeyFileError, SignatureError
from reconciler.fs.apkfiles import read_apk
from reconciler.fs.atomicfile import write_bytes
from reconciler.fs.keyfiles import load_public_key
from reconciler.model.errors import UsageError
from reconciler.model.layout import INDEX_NAME


def apkbuild(args: argparse.Namespace) -> int:
    """Each path's parsed fields; a path that cannot be parsed is reported and skipped."""
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


def version_compare(args: argparse.Namespace) -> int:
    mode = apkversion.VersionMode(args.mode)
    try:
        result = apkversion.compare(args.a, args.b, mode)
    except apkversion.InvalidVersion as exc:
        raise UsageError(str(exc)) from exc
    print({-1: "<", 0: "=", 1: ">"}[result])
    return 0


def index(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    infos = [read_apk(path) for path in sorted(directory.glob("*.apk"))]
    text = format_index(infos, rewrite_arch=args.rewrite_arch)
    data = build_index_archive(text, description=args.description, mtime=int(time.time()))
    out = Path(args.output) if args.output else directory / INDEX_NAME
    write_bytes(out, data)
    print(f"{out}: {len(infos)} packages")
    return 0


def verify(args: argparse.Namespace) -> int:
    try:
        key = load_public_key(Path(args.key))
        data = Path(args.file).read_bytes()
    except (OSError, KeyFileError) as exc:
        raise UsageError(str(exc)) from exc
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


def _apkbuild_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+")


def _version_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--mode", choices=[m.value for m in apkversion.VersionMode], default="3.0")


def _index_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir")
    parser.add_argument("--output", "-o")
    parser.add_argument("--description", "-d")
    parser.add_argument("--rewrite-arch")


def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file")
    parser.add_argument("--key", required=True, help="public key (PEM)")


SUBCOMMANDS = {
    "apkbuild": Subcommand("parsed fields of APKBUILDs as JSON", _apkbuild_arguments, apkbuild),
    "version-compare": Subcommand(
        "compare two apk versions: <, = or >", _version_compare_arguments, version_compare
    ),
    "index": Subcommand("write APKINDEX.tar.gz for the apks in DIR", _index_arguments, index),
    "verify": Subcommand("check an index or package signature", _verify_arguments, verify),
}
