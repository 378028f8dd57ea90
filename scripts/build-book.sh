#!/usr/bin/env bash
# Set up, then build the book's HTML into _build/html from the committed notebook outputs (no execution).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/jupyter-book build -W -n --keep-going .
echo "Open _build/html/index.html"
