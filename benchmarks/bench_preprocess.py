"""Face-preprocessing throughput and cached-load time, on frames made from packaged real faces.

Writes a CASME II-like set (default 255 samples, onset + apex, 640x480 JPEG)
into a temporary folder: each onset is one of scikit-image's 100 LFW faces,
upscaled and pasted on a textured background; the apex is the onset moved by a
pixel or two. It then times, on this machine:

1. `--repeat` full `preprocess_faces` runs, each into an empty cache (decode,
   MTCNN, crop, commit; the first also pays for oneDNN's per-shape kernel
   set-up), then decode-only and detect-only passes for a breakdown;
2. the second call, a cache hit (stat of every file, key, memory-mapped open);
3. reading every cached pixel once (page cache warm: the entry was just written).

Run:  python benchmarks/bench_preprocess.py            (one to a few minutes on 2 cores)
      python benchmarks/bench_preprocess.py --smoke    (16 samples, a few seconds)
Nothing is written outside the temporary folder unless --keep DIR is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from tsfmicro.faces import FaceCropConfig, detect_faces, load_entry, preprocess_faces
from tsfmicro.faces.detect import get_mtcnn
from tsfmicro.fileio import read_frame


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=255, help="samples (onset + apex each)")
    parser.add_argument("--size", type=int, default=224, help="crop side in pixels")
    parser.add_argument("--width", type=int, default=640, help="frame width")
    parser.add_argument("--height", type=int, default=480, help="frame height")
    parser.add_argument("--workers", type=int, default=None, help="decode threads (default: cores)")
    parser.add_argument("--batch-size", type=int, default=16, help="onset frames per MTCNN call")
    parser.add_argument("--detect-max-side", type=int, default=None, help="shrink before MTCNN")
    parser.add_argument("--device", default="cpu", help="torch device for MTCNN")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch threads in MTCNN")
    parser.add_argument("--repeat", type=int, default=3, help="preprocessing runs to time")
    parser.add_argument("--smoke", action="store_true", help="16 samples, one run")
    parser.add_argument("--keep", type=Path, default=None, help="keep frames and cache here")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.samples, args.repeat = 16, 1
    return args


def machine_facts() -> dict[str, object]:
    """What the numbers were measured on (load average matters on a shared machine)."""
    import torch

    cpu_model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
    }


def lfw_faces() -> np.ndarray:
    """The 100 real LFW face crops from scikit-image, as (100, 25, 25) uint8."""
    from skimage import data

    return np.round(data.lfw_subset()[:100] * 255).astype(np.uint8)


def make_frames(folder: Path, samples: int, height: int, width: int) -> pd.DataFrame:
    """Write onset/apex JPEG pairs with pasted LFW faces; return the sample table."""
    faces = lfw_faces()
    rng = np.random.default_rng(2024)
    rows = []
    for i in range(samples):
        scene = background(rng, height, width)
        side = int(rng.integers(int(0.4 * height), int(0.62 * height)))
        x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
        face = cv2.resize(faces[i % len(faces)], (side, side), interpolation=cv2.INTER_CUBIC)
        scene[y : y + side, x : x + side] = face[..., None]
        apex = np.roll(scene, (int(rng.integers(0, 3)), int(rng.integers(1, 3))), axis=(0, 1))
        key = f"bench/sub{i // 10:02d}/EP{i:03d}"
        onset_path, apex_path = folder / f"{i:04d}_onset.jpg", folder / f"{i:04d}_apex.jpg"
        for path, image in ((onset_path, scene), (apex_path, apex)):
            cv2.imwrite(
                str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
            )
        rows.append({"key": key, "onset_path": str(onset_path), "apex_path": str(apex_path)})
    return pd.DataFrame(rows)


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured, face-free colour background."""
    noise = cv2.GaussianBlur(rng.normal(0, 25, (height, width, 3)).astype(np.float32), (0, 0), 4)
    ramp = np.linspace(80, 160, width, dtype=np.float32)[None, :, None]
    return np.clip(ramp + noise, 0, 255).astype(np.uint8)


def timed(function, *args, **kwargs):
    """Call function; return (result, seconds)."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def run(args: argparse.Namespace, work: Path) -> dict[str, object]:
    """Generate frames, time preprocessing and cached loading; return the numbers."""
    numbers: dict[str, object] = {"machine_before": machine_facts()}
    frames_dir, cache_dir = work / "frames", work / "cache"
    frames_dir.mkdir(parents=True, exist_ok=True)
    table, numbers["generate_s"] = timed(
        make_frames, frames_dir, args.samples, args.height, args.width
    )
    n_frames = 2 * len(table)
    config = FaceCropConfig(
        size=args.size,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        detect_max_side=args.detect_max_side,
        torch_threads=args.torch_threads,
    )
    numbers["config"] = config.to_dict()

    _, numbers["detector_load_s"] = timed(get_mtcnn, config)
    numbers["runs"] = []
    for repeat in range(args.repeat):
        cpu_start = time.process_time()
        crops, wall = timed(preprocess_faces, table, config, cache_dir / f"run{repeat}")
        numbers["runs"].append(
            {
                "wall_s": wall,
                "process_cpu_s": time.process_time() - cpu_start,
                "frames_per_s": n_frames / wall,
                "load_average_1m_after": os.getloadavg()[0],
            }
        )
    numbers["preprocess_frames_per_s_median"] = statistics.median(
        run["frames_per_s"] for run in numbers["runs"]
    )
    numbers["fallback_samples"] = len(crops.fallback_keys)
    numbers["stats"] = dataclasses.asdict(crops.stats)

    paths = table["onset_path"].tolist() + table["apex_path"].tolist()
    workers = config.workers or numbers["machine_before"]["usable_cores"]
    with ThreadPoolExecutor(workers) as pool:
        onsets, numbers["decode_all_s"] = timed(lambda: list(pool.map(read_frame, paths)))
    numbers["decode_frames_per_s"] = len(paths) / numbers["decode_all_s"]
    _, numbers["detect_onsets_s"] = timed(detect_faces, onsets[: len(table)], config)
    numbers["detect_images_per_s"] = len(table) / numbers["detect_onsets_s"]

    hit, numbers["cache_hit_call_s"] = timed(
        preprocess_faces, table, config, cache_dir / "run0", progress=False
    )
    assert hit.stats.from_cache, "second call should have been a cache hit"
    opened, numbers["cache_open_s"] = timed(load_entry, hit.path)
    data, numbers["cache_read_all_s"] = timed(np.array, opened.frames)
    _, numbers["cache_np_load_s"] = timed(np.load, hit.path / "frames.npy", allow_pickle=False)
    numbers["cache_mb"] = data.nbytes / 1e6
    numbers["cache_layout"] = f"{tuple(opened.stacked().shape)} {data.dtype}"
    numbers["machine_after"] = {"load_average_1m": os.getloadavg()[0]}
    return numbers


def report(numbers: dict[str, object], samples: int) -> str:
    """Human-readable summary of the measured numbers."""
    machine = numbers["machine_before"]
    stats = numbers["stats"]
    lines = [
        f"machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores "
        f"(cpu_count {machine['cpu_count']}), torch threads {machine['torch_threads']} "
        f"(during MTCNN: {numbers['config']['torch_threads'] or 'unchanged'}), "
        f"CUDA {machine['cuda_available']}, load avg 1m {machine['load_average_1m']:.2f} before / "
        f"{numbers['machine_after']['load_average_1m']:.2f} after",
        f"versions: python {machine['python']}, torch {machine['torch']}, "
        f"opencv {machine['opencv']}, numpy {machine['numpy']}",
        f"set: {samples} samples x 2 frames, frames generated in {numbers['generate_s']:.1f} s; "
        f"crop size {numbers['config']['size']}, device {numbers['config']['device']}",
        f"detector load (torch import + MTCNN): {numbers['detector_load_s']:.2f} s",
        f"preprocess into an empty cache, median of {len(numbers['runs'])}: "
        f"{numbers['preprocess_frames_per_s_median']:.1f} frames/s "
        f"({stats['images_detected']} detections, {stats['frames_decoded']} decodes, "
        f"{numbers['fallback_samples']} fallbacks per run)",
        *(
            f"  run {i}: {run['wall_s']:.2f} s wall, {run['process_cpu_s']:.1f} s CPU, "
            f"{run['frames_per_s']:.1f} frames/s, load avg after {run['load_average_1m_after']:.2f}"
            for i, run in enumerate(numbers["runs"])
        ),
        f"  breakdown, separate passes: decode {numbers['decode_frames_per_s']:.0f} frames/s, "
        f"MTCNN {numbers['detect_images_per_s']:.1f} onsets/s",
        f"cache hit, whole call (stat + key + open): {numbers['cache_hit_call_s'] * 1e3:.1f} ms",
        f"cache open (memory-map): {numbers['cache_open_s'] * 1e3:.1f} ms; "
        f"read all {numbers['cache_mb']:.1f} MB {numbers['cache_layout']}: "
        f"{numbers['cache_read_all_s'] * 1e3:.1f} ms through the map, "
        f"{numbers['cache_np_load_s'] * 1e3:.1f} ms with a plain np.load (page cache warm)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="tsfmicro-bench-"))
    try:
        numbers = run(args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(report(numbers, args.samples))
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
