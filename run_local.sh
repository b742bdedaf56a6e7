#!/usr/bin/env bash
# Run the reconciler daemon on its embedded defaults: the sample pmaports tree in
# examples/, the local job service, the synthetic builder, everything it writes
# under _data/ and the status site in _html_out/. Extra arguments go to
# `reconciler run` (for example --once, or --config FILE).
set -euo pipefail
cd "$(dirname "$0")"
source .ci/venv.sh
ensure_venv requirements.txt
exec .venv/bin/python -m reconciler run "$@"
