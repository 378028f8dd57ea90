#!/usr/bin/env bash
# The package as Colab and Binder get it: build the wheel, install it with a chapter's install cell into a fresh
# virtual environment (reusing the checkout venv's third-party packages, torch among them, but not its editable
# ebmlib), then from a folder outside the repository import ebmlib, load a shipped checkpoint and run one chapter
# at smoke scale.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pip wheel --quiet --no-deps --no-build-isolation . -w "$work/dist"
python3 -m venv "$work/venv"
site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
new_site=$("$work/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$site" > "$new_site/_checkout_venv_packages.pth"   # third-party packages only: .pth files there are not run
# install it the way a chapter's first cell does on Colab (the cell of chapter 03, pointed at this wheel instead
# of the repository); the extras it asks for are already there through the .pth above, so nothing is downloaded
wheel=$(ls "$work"/dist/ebmlib-*.whl)
cell=$(.venv/bin/python -c "import jupytext; nb = jupytext.read('notebooks/03_mnist.py'); \
print(next(c.source for c in nb.cells if 'install' in c.metadata.get('tags', [])))")
(cd "$work" && EBMLIB_INSTALL_FROM="file://$wheel" "$work/venv/bin/python" -c "$cell")
"$work/venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('ebmlib') is None)" \
  || { echo "[wheel] the install cell did not install ebmlib"; exit 1; }
echo "[wheel] chapter 03's install cell installed the package into a venv that lacked it"
mkdir -p "$work/outside/notebooks"
cp notebooks/03_mnist.ipynb "$work/outside/notebooks/"
cd "$work/outside"
"$work/venv/bin/python" - <<'EOF'
import pathlib
import ebmlib
from ebmlib.core import recipes
from ebmlib.core.image_ebm import image_recipes
from ebmlib.presets import preset

where = pathlib.Path(ebmlib.__file__).resolve()
assert "site-packages" in str(where), f"ebmlib imported from {where}, not from the installed wheel"
recipe = image_recipes(preset("03_mnist", "demo").models)["mnist_cond_replay"]
t = recipes.load_trained(recipe)
assert t is not None and t.loaded, "the shipped checkpoint of mnist_cond_replay is not in the wheel"
print(f"[wheel] ebmlib {ebmlib.__version__} from {where.parent}; {recipe.name} loaded from the wheel "
      f"({len(t.history)} iterations)")
EOF
EBMLIB_SCALE=smoke TQDM_DISABLE=1 "$work/venv/bin/python" -m ebmlib reproduce 03 --scale smoke \
  --notebooks "$work/outside/notebooks" --out "$work/outside/results"
"$work/venv/bin/python" - "$work/outside/results/03_mnist.json" <<'PY'
import json, sys
record = json.load(open(sys.argv[1]))
# a kernel that imported the checkout's ebmlib would have recorded the checkout's git commit
assert record["commit"] is None and record["scale"] == "smoke", record.get("commit")
PY
echo "[wheel] chapter 03 ran at smoke scale from the installed wheel, outside the checkout ($repo not on the path)"
