"""Face preprocessing: MTCNN on the onset frame, one square crop for every frame, on-disk cache.

    from tsfmicro.faces import FaceCropConfig, preprocess_faces
    crops = preprocess_faces(samples, FaceCropConfig(size=112))
    clips = crops.stacked()  # (N, 2, 112, 112, 3) uint8 RGB: onset, apex

Importing this package loads neither torch nor the detector; MTCNN is built on
the first detection. See docs/faces.md for the crop rules and cache layout.
"""

from tsfmicro.faces.cache import default_cache_dir, faces_dir, load_entry
from tsfmicro.faces.config import FaceCropConfig
from tsfmicro.faces.crop import Square, centre_square, crop_square, square_around_box
from tsfmicro.faces.detect import LANDMARK_NAMES, FaceDetection, detect_faces
from tsfmicro.faces.pipeline import plan_samples, preprocess_faces
from tsfmicro.faces.result import FaceCrops, PreprocessStats

__all__ = [
    "LANDMARK_NAMES",
    "FaceCropConfig",
    "FaceCrops",
    "FaceDetection",
    "PreprocessStats",
    "Square",
    "centre_square",
    "crop_square",
    "default_cache_dir",
    "detect_faces",
    "faces_dir",
    "load_entry",
    "plan_samples",
    "preprocess_faces",
    "square_around_box",
]
