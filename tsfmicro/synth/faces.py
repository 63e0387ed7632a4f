"""Source faces: real face photographs that ship inside installed packages.

103 faces: the 100 face crops of scikit-image's `lfw_subset()` (25 x 25 grey crops from
Labeled Faces in the Wild; its last 100 images are non-faces and are not used), and three
portraits: `skimage.data.astronaut()` (colour), `skimage.data.camera()` (grey) and
matplotlib's `sample_data/grace_hopper.jpg` (colour).

Each face is located once per process with facenet-pytorch's MTCNN (box and five
landmarks), lazily, for the faces asked for. Worker processes receive the finished
`SourceFace` objects from their parent and never load torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tsfmicro.errors import DataError

LFW_FACES = 100
PORTRAITS = ("astronaut", "camera", "grace_hopper")
SOURCE_NAMES: tuple[str, ...] = (
    *(f"lfw_{i:03d}" for i in range(LFW_FACES)),
    *PORTRAITS,
)

# LFW crops are enlarged to this size and padded before detection: MTCNN finds all 100
# faces so, and none of the 100 non-faces.
_LFW_DETECT_SIZE = 160
_LFW_DETECT_PAD = 40
# LFW crops end at the cheeks and chin; their edge pixels are repeated this far out so the
# face's soft mask can fade out beyond the crop instead of cutting the face short.
_LFW_EXTEND = 3
# A portrait is cut to a square of this many face-box heights around the face.
_PORTRAIT_CROP = 2.6


@dataclass(frozen=True)
class SourceFace:
    """One source photograph cut around its face, with the face's MTCNN geometry."""

    index: int  # position in SOURCE_NAMES
    name: str
    image: np.ndarray  # float32 (H, W) grey or (H, W, 3) RGB, values 0..255
    box: np.ndarray  # (4,) x0, y0, x1, y1 of the MTCNN face box, in `image` pixels
    landmarks: np.ndarray  # (5, 2) eyes, nose tip, mouth corners (image left first)
    low_resolution: bool  # a 25 px LFW crop: sharpen it when it is enlarged

    @property
    def gray(self) -> bool:
        return self.image.ndim == 2

    @property
    def box_height(self) -> float:
        return float(self.box[3] - self.box[1])


# Per-process caches: raw photographs, the MTCNN detector, finished source faces.
_PHOTOS: dict[str, np.ndarray] = {}
_DETECTOR: list[object] = []
_SOURCES: dict[int, SourceFace] = {}


def source_count() -> int:
    return len(SOURCE_NAMES)


def get_sources(indices: list[int] | tuple[int, ...]) -> dict[int, SourceFace]:
    """The source faces with these indices, detecting those not yet cached (in one batch)."""
    wanted = sorted(set(int(i) for i in indices))
    for index in wanted:
        if not 0 <= index < len(SOURCE_NAMES):
            raise DataError(f"no source face {index} (there are {len(SOURCE_NAMES)})")
    missing = [i for i in wanted if i not in _SOURCES]
    if missing:
        _SOURCES.update(_detect(missing))
    return {i: _SOURCES[i] for i in wanted}


def install_sources(sources: dict[int, SourceFace]) -> None:
    """Put faces detected elsewhere (the parent process) into this process's cache."""
    _SOURCES.update(sources)


def _photo(name: str) -> np.ndarray:
    """A source photograph as uint8 grey (H, W) or RGB (H, W, 3), loaded once."""
    if name not in _PHOTOS:
        _PHOTOS[name] = _load_photo(name)
    return _PHOTOS[name]


def _load_photo(name: str) -> np.ndarray:
    import skimage.data

    if name.startswith("lfw_"):
        if "lfw" not in _PHOTOS:
            _PHOTOS["lfw"] = np.rint(skimage.data.lfw_subset()[:LFW_FACES] * 255).astype(np.uint8)
        return _PHOTOS["lfw"][int(name[4:])]
    if name == "astronaut":
        return skimage.data.astronaut()
    if name == "camera":
        return skimage.data.camera()
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read the Grace Hopper portrait shipped with matplotlib: {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _detector():
    """facenet-pytorch's MTCNN on the CPU, created once per process."""
    if not _DETECTOR:
        from facenet_pytorch import MTCNN

        _DETECTOR.append(MTCNN(keep_all=True, device="cpu"))
    return _DETECTOR[0]


def _detection_input(name: str) -> tuple[np.ndarray, float, float]:
    """RGB image for MTCNN, and (scale, pad) mapping its coordinates back to the photo."""
    photo = _photo(name)
    if name.startswith("lfw_"):
        size, pad = _LFW_DETECT_SIZE, _LFW_DETECT_PAD
        big = cv2.resize(photo, (size, size), interpolation=cv2.INTER_CUBIC)
        big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=128)
        return np.dstack([big] * 3), photo.shape[0] / size, float(pad)
    rgb = photo if photo.ndim == 3 else np.dstack([photo] * 3)
    return np.ascontiguousarray(rgb), 1.0, 0.0


def _detect(indices: list[int]) -> dict[int, SourceFace]:
    """Run MTCNN on the given sources: all LFW crops as one batch, portraits one by one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # measured: as fast as 2 threads here, and kinder to neighbours
    try:
        lfw = [i for i in indices if SOURCE_NAMES[i].startswith("lfw_")]
        groups = ([lfw] if lfw else []) + [[i] for i in indices if i not in lfw]
        found = {}
        for group in groups:
            inputs = [_detection_input(SOURCE_NAMES[i]) for i in group]
            boxes, probs, points = _detector().detect(
                np.stack([image for image, _, _ in inputs]), landmarks=True
            )
            for i, (_, scale, pad), b, p, lm in zip(
                group, inputs, boxes, probs, points, strict=True
            ):
                found[i] = _source_face(i, b, p, lm, scale, pad)
        return found
    finally:
        torch.set_num_threads(threads)


def _source_face(index, boxes, probs, points, scale: float, pad: float) -> SourceFace:
    """The most confident detection, mapped back to the photo and cut out around the face."""
    name = SOURCE_NAMES[index]
    if boxes is None or len(boxes) == 0:
        raise DataError(f"MTCNN found no face in the source photograph {name}")
    best = int(np.argmax(probs))
    box = (np.asarray(boxes[best], np.float64) - pad) * scale
    landmarks = (np.asarray(points[best], np.float64) - pad) * scale
    photo = _photo(name).astype(np.float32)
    if name.startswith("lfw_"):
        m = _LFW_EXTEND
        wider = cv2.copyMakeBorder(photo, m, m, m, m, cv2.BORDER_REPLICATE)
        return SourceFace(index, name, wider, box + m, landmarks + m, low_resolution=True)
    image, origin = _crop_around(photo, box)
    return SourceFace(
        index,
        name,
        image,
        box - np.tile(origin, 2),
        landmarks - origin,
        low_resolution=False,
    )


def _crop_around(photo: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A square cut of _PORTRAIT_CROP face heights around the box centre (mirrored at the
    photo's edges); returns the cut and its top-left corner in photo coordinates."""
    side = int(round(_PORTRAIT_CROP * (box[3] - box[1])))
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    origin = np.round(centre - side / 2)
    shift = np.array([[1, 0, -origin[0]], [0, 1, -origin[1]]], np.float64)
    cut = cv2.warpAffine(
        photo, shift, (side, side), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT101
    )
    return cut, origin
