"""Where data sets live on disk: one root for every loader, set by argument or the EBMLIB_DATA variable."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

__all__ = ["ENV_VAR", "data_root"]

ENV_VAR = "EBMLIB_DATA"


def data_root(root: Optional[str | os.PathLike] = None) -> Path:
    """The data root: ``root`` if given, else ``$EBMLIB_DATA``, else ``~/.cache/ebmlib/data``.

    Loaders keep torchvision's layout under it (``<root>/MNIST/raw/...``), so a root shared with other
    torchvision code is reused as it is.
    """
    if root is None:
        root = os.environ.get(ENV_VAR) or Path.home() / ".cache" / "ebmlib" / "data"
    return Path(root).expanduser()
