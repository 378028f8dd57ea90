"""Data sets, all under one root (``$EBMLIB_DATA``): MNIST and Fashion-MNIST (``mnist``), CIFAR-10, SVHN and DTD
textures (``cifar``), one entry point for every image set (``images.load_images``), Shadow-hand trajectories
(``hand``, needs MuJoCo) and dSprites (``dsprites``, generated). The last two are imported on demand."""
from ebmlib.data.cifar import load_cifar10, load_dtd, load_svhn  # noqa: F401
from ebmlib.data.images import DISPLAY_NAMES, IMAGE_DATASETS, image_shape, load_images  # noqa: F401
from ebmlib.data.mnist import DataMissingError, load_mnist, stage_idx_files  # noqa: F401
from ebmlib.data.root import data_root  # noqa: F401
