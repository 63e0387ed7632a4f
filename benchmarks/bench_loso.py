"""One LOSO evaluation several ways, timed in one run, on a synthetic CASME II-size set.

(a) baseline mirroring the published scripts: folds one after another; face crops stored as
    JPEG files, decoded and PIL-transformed every epoch (resize, joint flip/rotation/crop),
    fp32, batch 32, a DataLoader; the test subject evaluated every epoch the same way.
(b) our cached path, folds one after another: uint8 crops decoded once into tensors, batched
    augmentation on the device (tsfmicro.training.loso.run_loso), bf16 autocast on CUDA.
(c) our multi-fold paths, each timed, the fastest reported as (c):
    - spread: the folds as Ray tasks, one fold per task, several at once (a search trial's
      default), fold_cpus CPUs and fold_gpus GPUs each;
    - batched: fold-batched, the folds split into groups whose models are stacked and trained
      together (tsfmicro.training.batched), each group a Ray task with the same resources
      (a search trial with --fold-batch).

The set: 249 samples, 26 subjects, 5 classes. With the real CASME II spreadsheet at hand
(../shared/annotations, or --annotation) its rows are rendered (mode b of the synthetic
benchmark) so the counts are exactly CASME II's; otherwise 26 synthetic subjects x 10 clips,
thinned to 249. Prints samples per second (training sample-steps over wall time), the wall time
of each full LOSO, the ratios a/b and a/c, and on a GPU the model FLOP utilisation against the
device's dense bf16 peak; writes the figures as JSON.

    python benchmarks/bench_loso.py --preset tiny --epochs 2            # CPU
    python benchmarks/bench_loso.py --preset paper --epochs 50 --device cuda --fold-gpus 0.25
    python benchmarks/bench_loso.py --paths c_batched --fold-batch 13 --fold-gpus 0.5 ...
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# What `tsfmicro search` does unless told otherwise (search.config.Resources); docs/speed.md
# gives the measurements behind it.
SEARCH_DEFAULTS = {
    "cpu": "c_spread: each fold a Ray task with fold_cpus=1, as many at once as there are "
    "CPUs (--fold-batch 1); fold-batched training measured slower on the CPU",
    "gpu": "c_spread with fractional --fold-gpus; --fold-batch N trains N folds together per "
    "task (GPU figures to be measured)",
}

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, by device-name fragment.
BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "A10G": 70e12}


def build_set(folder: Path, image_size: int, annotation: Path | None) -> tuple:
    """Render the set, crop faces (cached), write 224 px face JPEGs for the baseline.

    Returns (PairSet at image_size, list of (onset_jpg, apex_jpg) per sample)."""
    import cv2

    from tsfmicro.datasets import load_dataset
    from tsfmicro.faces import FaceCropConfig, preprocess_faces
    from tsfmicro.pairs import pairs_from_table
    from tsfmicro.synth import SynthConfig, write_dataset, write_for_annotation

    copy = folder / "casme2"
    if annotation is not None:
        write_for_annotation(annotation, copy, SynthConfig(dataset="casme2", difficulty="easy"))
        table = load_dataset("casme2", copy, annotation=annotation)
    else:
        write_dataset(SynthConfig(dataset="casme2", subjects=26, clips_per_subject=10,
                                  difficulty="easy"), copy)
        table = load_dataset("casme2", copy)
        # 260 clips -> 249: drop the last clip of 11 subjects.
        drop = table.samples.groupby("subject").tail(1).index[:11]
        table.samples = table.samples.drop(index=drop).reset_index(drop=True)
    pairs = pairs_from_table(table, image_size, cache_dir=folder / "cache", progress=False)
    crops = preprocess_faces(table.samples, FaceCropConfig(size=224), folder / "cache",
                             progress=False)
    stacked = crops.stacked()  # (N, 2, 224, 224, 3)
    files = []
    jpgs = folder / "faces"
    jpgs.mkdir(exist_ok=True)
    for i, key in enumerate(crops.keys):
        names = []
        for f, which in enumerate(("onset", "apex")):
            path = jpgs / f"{key.replace('/', '_')}_{which}.jpg"
            cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(stacked[i, f]),
                                                cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            names.append(str(path))
        files.append(tuple(names))
    return pairs, files


class PublishedStyleSet(torch.utils.data.Dataset):
    """Per item: open two JPEGs with PIL, resize, jointly flip/rotate/crop, to tensor,
    normalise: what the published training scripts do every epoch."""

    def __init__(self, files, labels, size: int, train: bool, seed: int) -> None:
        self.files, self.labels, self.size, self.train = files, labels, size, train
        self.rng = random.Random(seed)
        self.pad = int(round(15 * size / 224))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from PIL import Image
        from torchvision.transforms import functional as TF

        from tsfmicro.training.data import IMAGENET_MEAN, IMAGENET_STD

        frames = [TF.resize(Image.open(p).convert("RGB"), [self.size, self.size])
                  for p in self.files[i]]
        if self.train:
            if self.rng.random() < 0.5:
                frames = [TF.hflip(f) for f in frames]
            angle = self.rng.uniform(-3.0, 3.0)
            frames = [TF.rotate(f, angle) for f in frames]
            frames = [TF.pad(f, self.pad) for f in frames]
            top = self.rng.randint(0, 2 * self.pad)
            left = self.rng.randint(0, 2 * self.pad)
            frames = [TF.crop(f, top, left, self.size, self.size) for f in frames]
        tensors = [TF.normalize(TF.to_tensor(f), IMAGENET_MEAN, IMAGENET_STD) for f in frames]
        return tensors[0], tensors[1], int(self.labels[i])


def run_baseline(pairs, files, model_cfg, train_cfg, device: torch.device) -> dict:
    from tsfmicro.models import build_model
    from tsfmicro.training.loso import fold_seed

    labels = pairs.labels.numpy()
    steps, start = 0, time.perf_counter()
    correct = 0
    for subject in pairs.subject_ids():
        test = np.flatnonzero(pairs.subjects == subject)
        train = np.flatnonzero(pairs.subjects != subject)
        seed = fold_seed(train_cfg.seed, subject)
        torch.manual_seed(seed)
        model = build_model(model_cfg).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr,
                                      weight_decay=train_cfg.weight_decay)
        schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=train_cfg.lr_gamma)
        train_set = PublishedStyleSet([files[i] for i in train], labels[train],
                                      model_cfg.image_size, True, seed)
        test_set = PublishedStyleSet([files[i] for i in test], labels[test],
                                     model_cfg.image_size, False, seed)
        loader = torch.utils.data.DataLoader(train_set, batch_size=32, shuffle=True)
        for epoch in range(train_cfg.epochs):
            model.train()
            for onset, apex, y in loader:
                loss = torch.nn.functional.cross_entropy(
                    model(onset.to(device), apex.to(device)), y.to(device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                steps += len(y)
            if epoch < train_cfg.lr_decay_epochs:
                schedule.step()
            model.eval()
            with torch.no_grad():
                preds = [model(o.to(device), a.to(device)).argmax(1).cpu()
                         for o, a, _ in torch.utils.data.DataLoader(test_set, batch_size=32)]
        correct += int((torch.cat(preds).numpy() == labels[test]).sum())
    _sync(device)
    return {"seconds": time.perf_counter() - start, "sample_steps": steps,
            "final_acc": correct / len(labels)}


def run_cached(pairs, model_cfg, train_cfg) -> dict:
    from tsfmicro.training.loso import run_loso

    start = time.perf_counter()
    result = run_loso(pairs, model_cfg, train_cfg)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "sample_steps": _steps(result),
            "final_acc": result.evaluate("final", n_boot=10).acc}


def run_multi(
    pairs, model_cfg, train_cfg, fold_cpus: float, fold_gpus: float, fold_batch: int
) -> dict:
    import ray

    from search.trial import run_folds
    from tsfmicro.training.loso import LosoResult

    subjects = pairs.subject_ids()
    groups = [subjects[i : i + fold_batch] for i in range(0, len(subjects), fold_batch)]

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}})
    try:
        ref = ray.put(pairs)
        task = ray.remote(run_folds).options(num_cpus=fold_cpus, num_gpus=fold_gpus)
        threads = max(1, int(fold_cpus))
        start = time.perf_counter()
        done = ray.get([task.remote(ref, g, model_cfg, train_cfg, threads) for g in groups])
        seconds = time.perf_counter() - start
        folds = [f for group in done for f in group]
    finally:
        ray.shutdown()
    result = LosoResult.from_folds(pairs, folds, model_cfg, train_cfg, seconds)
    return {"seconds": seconds, "sample_steps": _steps(result),
            "final_acc": result.evaluate("final", n_boot=10).acc,
            "slots": int(min(len(groups), _slots(fold_cpus, fold_gpus))),
            "folds_per_task": fold_batch, "tasks": len(groups)}


def _slots(fold_cpus: float, fold_gpus: float) -> float:
    cpus = os.cpu_count() or 1
    gpus = torch.cuda.device_count()
    return min(cpus / fold_cpus, gpus / fold_gpus if fold_gpus else math.inf)


def _steps(result) -> int:
    return int(sum(f.train_samples * f.epochs for f in result.folds))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fold-cpus", type=float, default=1.0)
    parser.add_argument("--fold-gpus", type=float, default=0.0)
    parser.add_argument("--fold-batch", type=int,
                        help="folds per task on the batched path (default: the folds split "
                        "evenly over the task slots that fit, one group per slot)")
    parser.add_argument("--paths", default="a,b,c_spread,c_batched",
                        help="which of a, b, c_spread, c_batched to run (c: both)")
    parser.add_argument("--annotation", type=Path, help="real CASME II spreadsheet (mode b)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    from tsfmicro.config import TrainConfig, preset
    from tsfmicro.flops import model_cost

    annotation = args.annotation
    default_sheet = (Path(__file__).resolve().parents[2] / "shared" / "annotations"
                     / "CASME2-coding-20190701.xlsx")
    if annotation is None and default_sheet.is_file():
        annotation = default_sheet
    device = torch.device(args.device)
    model_cfg = preset(args.preset, num_classes=5)
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=32, device=args.device)
    torch.set_num_threads(max(1, int(args.fold_cpus)))
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None},
        "preset": args.preset, "epochs": args.epochs, "device": args.device,
        "set_source": "CASME II spreadsheet rows (mode b)" if annotation else "26 x 10 thinned",
    }
    with tempfile.TemporaryDirectory(prefix="tsfmicro-bench-loso-") as tmp:
        t = time.perf_counter()
        pairs, files = build_set(Path(tmp), model_cfg.image_size, annotation)
        report["set"] = {"samples": len(pairs), "subjects": len(pairs.subject_ids()),
                         "classes": pairs.num_classes,
                         "build_seconds": round(time.perf_counter() - t, 1)}
        print(f"set: {report['set']}", flush=True)
        paths = set(args.paths.replace("c_", "c-").split(","))
        if "c" in paths:
            paths |= {"c-spread", "c-batched"}
        n_folds = len(pairs.subject_ids())
        slots = max(1, int(min(n_folds, _slots(args.fold_cpus, args.fold_gpus))))
        fold_batch = args.fold_batch or math.ceil(n_folds / slots)
        if "a" in paths:
            report["a_baseline"] = run_baseline(pairs, files, model_cfg, train_cfg, device)
            print(f"(a) {report['a_baseline']}", flush=True)
        if "b" in paths:
            report["b_cached"] = run_cached(pairs, model_cfg, train_cfg)
            print(f"(b) {report['b_cached']}", flush=True)
        if "c-spread" in paths:
            report["c_spread"] = run_multi(pairs, model_cfg, train_cfg, args.fold_cpus,
                                           args.fold_gpus, 1)
            print(f"(c, spread) {report['c_spread']}", flush=True)
        if "c-batched" in paths:
            report["c_batched"] = run_multi(pairs, model_cfg, train_cfg, args.fold_cpus,
                                            args.fold_gpus, fold_batch)
            print(f"(c, batched) {report['c_batched']}", flush=True)

    flops_per_step = 3 * model_cost(model_cfg).flops  # forward + backward ~ 3x forward
    peak = next((v for k, v in BF16_PEAK.items() if report["machine"]["gpu"]
                 and k in report["machine"]["gpu"]), None)
    for key in ("a_baseline", "b_cached", "c_spread", "c_batched"):
        if key in report:
            r = report[key]
            r["samples_per_second"] = round(r["sample_steps"] / r["seconds"], 1)
            r["seconds"] = round(r["seconds"], 1)
            if peak:
                r["mfu_bf16"] = round(flops_per_step * r["sample_steps"] / r["seconds"] / peak, 4)
    multi = [k for k in ("c_spread", "c_batched") if k in report]
    if multi:
        report["c_fastest"] = min(multi, key=lambda k: report[k]["seconds"])
    a = report.get("a_baseline", {}).get("seconds")
    for key, name in (("b_cached", "a_over_b"), ("c_spread", "a_over_c_spread"),
                      ("c_batched", "a_over_c_batched"), (report.get("c_fastest"), "a_over_c")):
        if a and key in report:
            report[name] = round(a / report[key]["seconds"], 2)
    report["search_default_path"] = SEARCH_DEFAULTS
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
