#!/usr/bin/env bash
# DVC needs git unless told otherwise. In a folder that is not a git repository
# (a downloaded archive, say), run DVC without SCM and say so.
set -euo pipefail
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    exit 0
fi
echo "note: $(pwd) is not a git repository; running DVC without git (dvc config --local core.no_scm true)." >&2
echo "      'dvc params diff' and 'dvc exp' need git: run 'git init' to use them." >&2
dvc config --local core.no_scm true
