"""The part of writing that runs in worker processes: render frames, write JPEGs atomically.

Kept free of pandas and torch so a freshly spawned worker starts in a fraction of a second:
it receives the detected source faces from its parent once (`init_worker`) and then jobs
of frames with their output paths already decided.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tsfmicro.fileio import write_errors, written_whole
from tsfmicro.synth.clips import ClipSpec
from tsfmicro.synth.faces import SourceFace, install_sources
from tsfmicro.synth.render import RenderContext, Renderer

# A job: clips of one subject, each with its (frame number, output path) pairs.
Job = tuple[tuple[ClipSpec, tuple[tuple[int, str], ...]], ...]

_RENDERERS: dict[RenderContext, Renderer] = {}


def init_worker(sources: dict[int, SourceFace]) -> None:
    """Process-pool initializer: one OpenCV thread per process, faces from the parent."""
    cv2.setNumThreads(1)
    install_sources(sources)


def renderer_for(context: RenderContext) -> Renderer:
    """This process's renderer for a context (one at a time, so caches stay bounded)."""
    if context not in _RENDERERS:
        _RENDERERS.clear()
        _RENDERERS[context] = Renderer(context)
    return _RENDERERS[context]


def render_job(context: RenderContext, job: Job) -> int:
    """Render and write every frame of a job; returns how many were written."""
    renderer = renderer_for(context)
    quality = context.config.jpeg_quality
    written = 0
    for clip, targets in job:
        for n, path in targets:
            write_jpeg(Path(path), renderer.frame(clip, n), quality)
            written += 1
    return written


def write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    """Encode RGB or grey `image` as JPEG and write it atomically: to a hidden temporary
    file in the same folder, then renamed, so a killed run never leaves half a JPEG under a
    frame's name (fileio.written_whole; a full disk is one InputError naming the frame)."""
    pixels = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if path.suffix.casefold() == ".bmp":  # SMIC ships bitmaps
        ok, data = cv2.imencode(".bmp", pixels)
    else:
        ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OSError(f"JPEG encoding failed for {path}")
    with write_errors(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    with written_whole(path) as temporary:
        temporary.write_bytes(data.tobytes())
