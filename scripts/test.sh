#!/usr/bin/env bash
# Set up, then run every test: ebmlib's unit tests (with the layout and Jupytext pair checks), every chapter at
# smoke scale, every chapter's paper branch shrunk to seconds, and the book build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TQDM_DISABLE=1 MPLBACKEND=Agg PYTHONHASHSEED=0
# Offline data: a shared copy next to the checkout, if there is one (else torchvision downloads MNIST, and the
# dSprites test against the real frames skips)
if [ -z "${EBMLIB_MNIST_SRC:-}" ] && [ -d ../shared/data/mnist ]; then
  export EBMLIB_MNIST_SRC=$(cd ../shared/data/mnist && pwd)
fi
if [ -z "${EBMLIB_DSPRITES_GIF:-}" ] && [ -f ../shared/data/dsprites/dsprites.gif ]; then
  export EBMLIB_DSPRITES_GIF=$(cd ../shared/data/dsprites && pwd)/dsprites.gif
fi
start=$(date +%s)
stamp() { echo "   ($(( $(date +%s) - start )) s so far)"; }

echo "== unit tests (the import-direction test and the Jupytext pair check among them)"
.venv/bin/python -m pytest tests -q --durations=10
stamp

echo "== notebooks at smoke scale (nbval re-executes them; committed outputs are not compared)"
EBMLIB_SCALE=smoke .venv/bin/python -m pytest --nbval-lax notebooks -q -p no:cacheprovider
stamp

echo "== every chapter's paper branch, shrunk (PAPER_SHRUNK of each preset; CIFAR-10/SVHN/DTD from tiny fixtures)"
paper=$(mktemp -d)
trap 'rm -rf "$paper"' EXIT
.venv/bin/python -m ebmlib data fixtures --root "$paper/data" >/dev/null
EBMLIB_SCALE=paper EBMLIB_SHRINK=1 EBMLIB_DATA="$paper/data" EBMLIB_CHECK_MD5=0 EBMLIB_OUT="$paper/results" \
  .venv/bin/python -m pytest --nbval-lax notebooks -q -p no:cacheprovider
stamp

echo "== the package as Colab and Binder install it (wheel, fresh venv, one chapter outside the checkout)"
bash scripts/test-wheel.sh
stamp

echo "== book build (renders the committed demo-scale outputs)"
rm -rf _build
.venv/bin/jupyter-book build -W -n --keep-going . >_build_log.txt 2>&1 || { cat _build_log.txt; exit 1; }
tail -n 3 _build_log.txt
rm -f _build_log.txt
echo "== the built pages as a reader sees them (no raw tables or math, tracebacks, machine paths, figure reprs)"
EBMLIB_BUILT_BOOK=_build/html .venv/bin/python -m pytest tests/test_book_check.py -q -p no:cacheprovider
echo "== all tests passed in $(( $(date +%s) - start )) s"
