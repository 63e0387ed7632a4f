"""A trained model as a folder, and predictions from image files.

A model folder holds `weights.pt` (a state dict, loaded with
`torch.load(weights_only=True)`: tensors only, no arbitrary unpickling) and
`tsfmicro_model.json` (model config, class names, face-crop settings,
provenance). `Predictor` crops the face as training did (MTCNN on the onset,
the same square for the apex), then returns class probabilities.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tsfmicro.config import ModelConfig
from tsfmicro.errors import DataError, InputError
from tsfmicro.faces import FaceCropConfig
from tsfmicro.models import TSFmicro, build_model
from tsfmicro.training.data import normalize, to_unit_float

WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "tsfmicro_model.json"
FORMAT_VERSION = 1
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


def save_model(
    model: TSFmicro,
    out_dir: str | Path,
    class_names: tuple[str, ...],
    face_config: FaceCropConfig,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write a model folder; returns it."""
    from tsfmicro.fileio import write_errors, written_whole

    out = Path(out_dir)
    with write_errors(out):
        out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    meta = {
        "format_version": FORMAT_VERSION,
        "model": model.cfg.to_dict(),
        "class_names": list(class_names),
        "face_crop": face_config.to_dict(),
        "info": info or {},
    }
    # Both files are written in full beside their names before either replaces an old one, so
    # a full disk leaves the old model as it was. The weights are serialised in memory first:
    # torch's writer, failing on a full disk, would hide the OSError behind a RuntimeError.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with written_whole(out / WEIGHTS_FILE) as weights:
        weights.write_bytes(buffer.getbuffer())
        with written_whole(out / CONFIG_FILE) as config:
            config.write_text(json.dumps(meta, indent=2, default=str))
    return out


def find_model_dir(path: str | Path) -> Path:
    """The folder holding tsfmicro_model.json at or below `path` (pulled MLflow models nest it)."""
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return path
    found = sorted(path.rglob(CONFIG_FILE)) if path.is_dir() else []
    if not found:
        raise DataError(f"no {CONFIG_FILE} at or below {path}: not a tsfmicro model folder")
    return found[0].parent


def read_meta(path: str | Path) -> dict[str, Any]:
    """A model folder's tsfmicro_model.json (at or below `path`), its format version checked."""
    folder = find_model_dir(path)
    meta = json.loads((folder / CONFIG_FILE).read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{folder / CONFIG_FILE}: unsupported format_version "
            f"{meta.get('format_version')!r} (expected {FORMAT_VERSION})"
        )
    return meta


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], ModelConfig]:
    """The network's weights (a state dict, read with weights_only=True) and its ModelConfig,
    from a model folder or a folder above one (a pulled or downloaded MLflow model)."""
    meta = read_meta(path)
    state = torch.load(
        find_model_dir(path) / WEIGHTS_FILE, map_location="cpu", weights_only=True
    )
    return state, ModelConfig.from_dict(meta["model"])


def load_network(path: str | Path) -> TSFmicro:
    """The TSFmicro network of a model folder (or a folder above one) with its weights, in eval
    mode on the CPU: `load_network("models/NAME_champion")(onset, apex)` takes two normalised
    (N, 3, S, S) batches and returns class logits."""
    state, cfg = load_state(path)
    model = build_model(cfg)
    model.load_state_dict(state)
    return model.eval()


@dataclass
class Prediction:
    probabilities: dict[str, float]
    label: str
    onset: str
    apex: str
    face_found: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "probabilities": self.probabilities,
            "onset": self.onset,
            "apex": self.apex,
            "face_found": self.face_found,
        }


class Predictor:
    """A loaded model with its preprocessing."""

    def __init__(
        self,
        model: TSFmicro,
        class_names: tuple[str, ...],
        face_config: FaceCropConfig,
        info: dict[str, Any],
    ) -> None:
        self.model = model.eval()
        self.class_names = class_names
        self.face_config = face_config
        self.info = info

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Predictor:
        meta = read_meta(path)
        model = load_network(path)
        face_config = FaceCropConfig.from_dict({**meta["face_crop"], "device": device})
        return cls(model.to(device), tuple(meta["class_names"]), face_config, meta.get("info", {}))

    @property
    def image_size(self) -> int:
        return self.model.cfg.image_size

    def crop(self, onset: np.ndarray, apex: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """Face crops (S, S, 3) of both frames with the onset's square; False when no face
        was found (a centred square is used then)."""
        from tsfmicro.faces import centre_square, crop_square, detect_faces, square_around_box

        if onset.shape != apex.shape:
            raise InputError(f"onset {onset.shape} and apex {apex.shape} frames differ in size")
        detection = detect_faces([onset], self.face_config)[0]
        if detection is None:
            square = centre_square(*onset.shape[:2])
        else:
            square = square_around_box(detection.box, self.face_config.margin)
        size, pad = self.image_size, self.face_config.pad_mode
        return (
            crop_square(onset, square, size, pad),
            crop_square(apex, square, size, pad),
            detection is not None,
        )

    @torch.inference_mode()
    def probabilities(self, onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
        """Class probabilities (N, K) for uint8 face crops (N, S, S, 3) or (S, S, 3)."""
        onset_t, apex_t = (torch.as_tensor(np.asarray(a)) for a in (onset, apex))
        if onset_t.ndim == 3:
            onset_t, apex_t = onset_t[None], apex_t[None]
        device = next(self.model.parameters()).device
        batch = [
            normalize(to_unit_float(t.permute(0, 3, 1, 2).to(device))) for t in (onset_t, apex_t)
        ]
        return torch.softmax(self.model(*batch).float(), dim=1).cpu().numpy()

    def read_onset(self, path: str | Path) -> np.ndarray:
        """Decode an onset frame; one too small for the face detector is a DataError naming
        the file."""
        from tsfmicro.faces.pipeline import read_onset

        return read_onset(path, self.face_config)

    def read_like(self, path: str | Path, onset: np.ndarray, onset_path: str | Path) -> np.ndarray:
        """Decode a frame cut with the onset's square: it must be the onset's size."""
        from tsfmicro.fileio import read_frame

        image = read_frame(path)
        if image.shape != onset.shape:
            raise InputError(
                f"frame {path} is {image.shape[1]}x{image.shape[0]} but the onset {onset_path} "
                f"is {onset.shape[1]}x{onset.shape[0]}: one face square cannot serve both"
            )
        return image

    def predict_files(self, onset_path: str | Path, apex_path: str | Path) -> Prediction:
        onset = self.read_onset(onset_path)
        apex = self.read_like(apex_path, onset, onset_path)
        return self._predict(onset, apex, str(onset_path), str(apex_path))

    def predict_images(
        self, onset: bytes, apex: bytes, onset_name: str = "onset", apex_name: str = "apex"
    ) -> Prediction:
        """predict_files for the bytes of two image files (e.g. decoded from base64); the
        names stand for them in errors and in the Prediction."""
        from tsfmicro.faces.detect import frame_size_problem
        from tsfmicro.fileio import decode_frame

        onset_image = decode_frame(onset, onset_name)[0]
        problem = frame_size_problem(onset_image.shape, self.face_config)
        if problem is not None:
            raise DataError(f"frame {onset_name} is {problem}")
        apex_image = decode_frame(apex, apex_name)[0]
        if apex_image.shape != onset_image.shape:
            raise InputError(
                f"frame {apex_name} is {apex_image.shape[1]}x{apex_image.shape[0]} but the onset "
                f"{onset_name} is {onset_image.shape[1]}x{onset_image.shape[0]}: one face square "
                "cannot serve both"
            )
        return self._predict(onset_image, apex_image, onset_name, apex_name)

    def _predict(
        self, onset: np.ndarray, apex: np.ndarray, onset_name: str, apex_name: str
    ) -> Prediction:
        onset_crop, apex_crop, found = self.crop(onset, apex)
        probs = self.probabilities(onset_crop, apex_crop)[0]
        return Prediction(
            probabilities={c: float(p) for c, p in zip(self.class_names, probs, strict=True)},
            label=self.class_names[int(probs.argmax())],
            onset=onset_name,
            apex=apex_name,
            face_found=found,
        )

    def predict_clip(self, folder: str | Path) -> Prediction:
        """A clip folder: the first frame (by the number in its name) is the onset; the apex is
        the frame whose face crop differs most from the onset's (mean absolute difference)."""
        frames = clip_frames(folder)
        onset = self.read_onset(frames[0])
        best, best_score = frames[-1], -1.0
        onset_crop = None
        for path in frames[1:]:
            o, a, _ = self.crop(onset, self.read_like(path, onset, frames[0]))
            onset_crop = o
            score = float(np.abs(a.astype(np.int16) - o.astype(np.int16)).mean())
            if score > best_score:
                best, best_score = path, score
        if onset_crop is None:
            raise InputError(f"clip folder {folder} has a single frame; need onset and apex")
        return self.predict_files(frames[0], best)


def clip_frames(folder: str | Path) -> list[Path]:
    """Image files of a clip folder in frame order (the last number in each file name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"clip folder {folder} does not exist")
    files = [p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES]
    numbered = []
    for path in files:
        digits = re.findall(r"\d+", path.stem)
        if not digits:
            raise InputError(f"{path}: no frame number in the file name")
        numbered.append((int(digits[-1]), path))
    if len(numbered) < 2:
        raise InputError(f"clip folder {folder} holds {len(numbered)} image(s); need two or more")
    return [p for _, p in sorted(numbered)]
