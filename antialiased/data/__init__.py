"""Data: ImageNet-layout folders, the paper's transforms, and validation-set preparation."""
from antialiased.data.folder import (
    EXPECTED_LAYOUT,
    SKIPPED_TARGET,
    CorruptImageError,
    DatasetLayoutError,
    ImageFolderDataset,
    find_split,
    load_rgb,
    to_rgb,
)
from antialiased.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize,
    eval_transform,
    normalize,
    to_float_normalized,
    train_transform,
    uint8_transform,
)

__all__ = [
    "EXPECTED_LAYOUT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SKIPPED_TARGET",
    "CorruptImageError",
    "DatasetLayoutError",
    "ImageFolderDataset",
    "denormalize",
    "eval_transform",
    "find_split",
    "load_rgb",
    "normalize",
    "to_float_normalized",
    "to_rgb",
    "train_transform",
    "uint8_transform",
]
