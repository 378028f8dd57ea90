"""Data sets, all under one root (``$EBMLIB_DATA``): MNIST and Fashion-MNIST (``mnist``), CIFAR-10, SVHN and DTD
textures (``cifar``), one entry point for every image set (``images.load_images``), tiny real-format fixtures
(``fixtures``), Shadow-hand trajectories (``hand``, needs MuJoCo) and dSprites (``dsprites``). The last three are
imported on demand."""
from ebmlib.data.cifar import load_cifar10, load_dtd, load_svhn
from ebmlib.data.images import DISPLAY_NAMES, IMAGE_DATASETS, image_shape, load_images
from ebmlib.data.mnist import DataMissingError, load_mnist, stage_idx_files
from ebmlib.data.root import data_root

__all__ = ["load_cifar10", "load_dtd", "load_svhn", "DISPLAY_NAMES", "IMAGE_DATASETS", "image_shape", "load_images",
           "DataMissingError", "load_mnist", "stage_idx_files", "data_root"]
