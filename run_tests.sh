#!/usr/bin/env bash
# Run every check the project has: lint, format, types and the test suite.
# Installs what the tests need (a venv with requirements-test.txt) on a fresh
# machine. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
source .ci/venv.sh
ensure_venv requirements-test.txt
source .ci/system-packages.sh && ensure_system_packages
.venv/bin/ruff check reconciler tests bench
.venv/bin/ruff format --check reconciler tests bench
.venv/bin/mypy
.venv/bin/lint-imports
# pytest exits 5 when it collects no test: with `set -e` that fails the run too.
.venv/bin/python -m pytest "$@"
