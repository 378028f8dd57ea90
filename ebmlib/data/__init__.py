"""Data sets, all under one root (``$EBMLIB_DATA``): MNIST and Fashion-MNIST (``mnist``), Shadow-hand
trajectories (``hand``, needs MuJoCo) and dSprites (``dsprites``, generated). The last two are imported on demand."""
from .mnist import DataMissingError, ImageData, dequantize, load_mnist, stage_idx_files  # noqa: F401
from .root import data_root  # noqa: F401
