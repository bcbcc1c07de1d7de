"""Image data: sources (IDX, CIFAR, image folders, arrays, CSV, built-in, named public sets),
normalisation and loaders.

Every source gives an :class:`ImageData` (uint8 images ``(N, C, H, W)``, int64 labels ``(N,)``,
class names); :func:`open_data` turns a ``--data`` string into :class:`DataSplits`. Data for
localisation, segmentation and detection is an :class:`AnnotatedData` per split
(:func:`open_annotated`, :func:`infer_task`; generated digit scenes: :func:`write_scenes`).

Example:
    >>> splits = open_data("digits", val_split=0.1)
    >>> norm = Normalization.fit(splits.train.images)
    >>> loader = InMemoryLoader(splits.train, batch_size=128, normalization=norm)
"""
from cnnkit.data.annotated import AnnotatedData, AnnotatedSplits
from cnnkit.data.arrays import from_arrays, load_npy, load_npz
from cnnkit.data.builtin import builtin_names, load_builtin
from cnnkit.data.cifar import load_cifar
from cnnkit.data.csv_source import load_csv
from cnnkit.data.dataset import DataSplits, ImageData
from cnnkit.data.download import download_file
from cnnkit.data.folder import (decode_image, list_image_folder, load_image_folder,
                                load_image_folder_splits)
from cnnkit.data.idx import find_idx_pair, load_idx, read_idx
from cnnkit.data.loader import InMemoryLoader
from cnnkit.data.named import (DatasetInfo, RemoteFile, dataset_info, default_data_dir,
                               load_named, named_datasets, register_dataset)
from cnnkit.data.normalization import Normalization
from cnnkit.data.open import convert_channels, open_data, resize_images
from cnnkit.data.open_annotated import infer_task, open_annotated
from cnnkit.data.scenes import open_scenes, scene_names, write_scenes
from cnnkit.data.stream import StreamingLoader

__all__ = [
    "AnnotatedData", "AnnotatedSplits", "infer_task", "open_annotated", "open_scenes",
    "scene_names", "write_scenes", "DataSplits", "DatasetInfo", "ImageData", "InMemoryLoader", "Normalization", "RemoteFile",
    "StreamingLoader", "builtin_names", "convert_channels", "dataset_info", "decode_image",
    "default_data_dir", "download_file", "find_idx_pair", "from_arrays", "list_image_folder",
    "load_builtin", "load_cifar", "load_csv", "load_idx", "load_image_folder",
    "load_image_folder_splits", "load_named", "load_npy", "load_npz", "named_datasets",
    "open_data", "read_idx", "register_dataset", "resize_images",
]
