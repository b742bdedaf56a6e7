"""The sign job's program: sign one unsigned APKINDEX.tar.gz with the final key.

It runs inside the sign job, the only place the final private key is handed to.
It refuses to sign any bytes whose sha256 is not the one the daemon asked for,
so a job can never be talked into signing something else.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

from reconciler.formats.apkindex import sign_archive
from reconciler.fs.atomicfile import write_bytes
from reconciler.fs.keyfiles import load_private_key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reconciler.signer")
    parser.add_argument("--unsigned", type=Path, required=True)
    parser.add_argument("--sha256", required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--key-name", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    data = args.unsigned.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != args.sha256:
        print(f"ERROR: {args.unsigned} has sha256 {actual}, expected {args.sha256}; not signing")
        return 1
    signed = sign_archive(data, load_private_key(args.key), args.key_name, mtime=int(time.time()))
    write_bytes(args.out, signed)
    print(f"signed {args.unsigned} ({actual}) as .SIGN.RSA.{args.key_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
