"""One LOSO evaluation several ways, timed in one run, on a synthetic CASME II-size set.

(a) baseline mirroring the published scripts: folds one after another; face crops stored as
    JPEG files, decoded and PIL-transformed every epoch (resize, joint flip/rotation/crop),
    fp32, batch 32, a DataLoader; for each training item the published training-pair choice
    (every candidate frame near the annotated onset and apex decoded and compared, every
    epoch); the test subject evaluated every epoch the same way.
(b) our cached path, folds one after another: uint8 crops decoded once into tensors (the
    training pair chosen once, when the set is built: tsfmicro.datasets.train_pairs), batched
    augmentation on the device (tsfmicro.training.fold), bf16 autocast on CUDA, and
    MachineConfig.compile as given by --compile.
(c) our multi-fold paths, each timed, the fastest reported as (c):
    - spread: one fold per task, several tasks at once, fold_cpus CPUs and fold_gpus GPUs each
      (fractions share a GPU): what a search trial does by default;
    - batched: the folds split into groups whose models are stacked and trained together
      (tsfmicro.training.stacked), each group a task with the same resources (a search trial
      with --fold-batch);
    - streams: the folds split into groups the same way, each group a task whose folds train
      at once in threads, each on a CUDA stream of its own (tsfmicro.training.streams; a
      search trial with --fold-batch N --fold-group streams). On the CPU one task holds every
      fold and every CPU, one fold per CPU at a time.
    The tasks run as Ray tasks (the search's engine) when Ray is installed, else (--backend
    processes, e.g. on a GPU machine without the search extras) in a pool of worker processes
    that each hold the set once; the JSON names the backend.

The set: 249 samples, 26 subjects, 5 classes. With the real CASME II spreadsheet at hand
(../shared/annotations, or --annotation) its rows are rendered (mode b of the synthetic
benchmark) so the counts are exactly CASME II's; otherwise 26 synthetic subjects x 10 clips,
thinned to 249. Prints samples per second (training sample-steps over wall time), the wall time
of each full LOSO, the ratios a/b and a/c, and on a GPU the model FLOP utilisation against the
device's dense bf16 peak; writes the figures as JSON after every path (a run cut short keeps
what it measured).

--sample-folds K times (a) and (b) on K folds spread over the subjects, and --baseline-epochs E
times (a) on E epochs of each; their full-LOSO wall time is extrapolated by training sample-steps
(the JSON marks them "extrapolated"): on a GPU a published-style LOSO of the paper preset takes
far longer than the (c) paths it is compared to.

    python benchmarks/bench_loso.py --preset tiny --epochs 2                      # CPU
    python benchmarks/bench_loso.py --preset paper --epochs 50 --device cuda --sample-folds 2 \
        --baseline-epochs 5
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

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, by device-name fragment.
BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "A10G": 70e12}
PATHS = ("a", "b", "c_spread", "c_batched", "c_streams")
MULTI = ("c_spread", "c_batched", "c_streams")


def build_set(folder: Path, image_size: int, annotation: Path | None,
              small: int | None = None) -> tuple:
    """Render the set (with the frames the training-pair choice compares), crop faces (cached),
    write 224 px face JPEGs of every frame the baseline reads. `small`: instead, `small`
    synthetic subjects x 4 clips (a quick check of the benchmark itself).

    Returns (PairSet at image_size, per sample a dict: annotated onset and apex frame numbers,
    the candidate range r, and frame number -> JPEG path)."""
    import cv2

    from tsfmicro.datasets import frame_path, load_dataset
    from tsfmicro.datasets.train_pairs import candidate_frames, jitter_range
    from tsfmicro.faces import FaceCropConfig, preprocess_faces
    from tsfmicro.pairs import pairs_from_table
    from tsfmicro.synth import SynthConfig, write_dataset, write_for_annotation

    copy = folder / "casme2"
    if annotation is not None and not small:
        write_for_annotation(annotation, copy, SynthConfig(dataset="casme2", difficulty="easy",
                                                           pair_frames=True))
        table = load_dataset("casme2", copy, annotation=annotation)
    else:
        write_dataset(SynthConfig(dataset="casme2", subjects=small or 26,
                                  clips_per_subject=4 if small else 10, difficulty="easy",
                                  pair_frames=True), copy)
        table = load_dataset("casme2", copy)
        if not small:  # 260 clips -> 249: drop the last clip of 11 subjects.
            drop = table.samples.groupby("subject").tail(1).index[:11]
            table.samples = table.samples.drop(index=drop).reset_index(drop=True)
    pairs = pairs_from_table(table, image_size, cache_dir=folder / "cache", progress=False)
    samples = table.samples
    records = samples.to_dict("records")
    numbers = []
    for row in records:
        onset, apex = int(row["onset"]), int(row["apex"])
        r = jitter_range("casme2", onset, apex)
        listed = [n for n in candidate_frames(onset, apex, r) if frame_path(row, n).is_file()]
        numbers.append((onset, apex, r, listed))
    samples = samples.assign(bench_frames=[
        [str(frame_path(row, n)) for n in listed]
        for row, (_, _, _, listed) in zip(records, numbers, strict=True)
    ])
    crops = preprocess_faces(samples, FaceCropConfig(size=224, frames="clip",
                                                     clip_column="bench_frames"),
                             folder / "cache", progress=False)
    files = []
    jpgs = folder / "faces"
    jpgs.mkdir(exist_ok=True)
    for i, key in enumerate(crops.keys):
        onset, apex, r, listed = numbers[i]
        frames = crops.sample(i)
        paths = {}
        for n, image in zip(listed, frames, strict=True):
            path = jpgs / f"{key.replace('/', '_')}_{n}.jpg"
            cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            paths[n] = str(path)
        files.append({"onset": onset, "apex": apex, "r": r, "frames": paths})
    return pairs, files


class PublishedStyleSet(torch.utils.data.Dataset):
    """Per item: for a training item, the published training-pair choice (every candidate frame
    near the annotated onset and apex decoded with OpenCV and compared); then the pair as PIL
    images, resized, jointly flipped/rotated/cropped, to tensor, normalised: what the published
    training scripts do every epoch. Each candidate is decoded once per item (the scripts read
    the apex candidates again for every onset candidate), so this is if anything faster."""

    def __init__(self, files, labels, size: int, train: bool, seed: int,
                 choose: bool = True) -> None:
        self.files, self.labels, self.size, self.train = files, labels, size, train
        self.choose = train and choose
        self.rng = random.Random(seed)
        self.pad = int(round(15 * size / 224))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        import cv2
        from PIL import Image
        from torchvision.transforms import functional as TF

        from tsfmicro.datasets.train_pairs import choose_pair
        from tsfmicro.training.data import IMAGENET_MEAN, IMAGENET_STD

        item = self.files[i]
        if self.choose:
            decoded = {n: cv2.imread(p)[:, :, ::-1] for n, p in item["frames"].items()}
            pair = choose_pair(decoded, item["onset"], item["apex"], item["r"])
            images = [Image.fromarray(np.ascontiguousarray(decoded[n])) for n in pair]
        else:
            images = [Image.open(item["frames"][item[which]]).convert("RGB")
                      for which in ("onset", "apex")]
        frames = [TF.resize(image, [self.size, self.size]) for image in images]
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


def run_baseline(pairs, files, subjects, model_cfg, train_cfg, device: torch.device) -> dict:
    """The published-style LOSO over `subjects` (all of them, or a sample to extrapolate from)."""
    from tsfmicro.models import build_model
    from tsfmicro.training.fold import fold_seed

    labels = pairs.labels.numpy()
    steps, start = 0, time.perf_counter()
    correct = tested = 0
    for subject in subjects:
        test = np.flatnonzero(pairs.subjects == subject)
        train = np.flatnonzero(pairs.subjects != subject)
        seed = fold_seed(train_cfg.seed, subject)
        torch.manual_seed(seed)
        model = build_model(model_cfg).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr,
                                      weight_decay=train_cfg.weight_decay)
        schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=train_cfg.lr_gamma)
        train_set = PublishedStyleSet([files[i] for i in train], labels[train],
                                      model_cfg.image_size, True, seed,
                                      choose=train_cfg.train_pairs)
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
        tested += len(test)
    _sync(device)
    return {"seconds": time.perf_counter() - start, "sample_steps": steps,
            "final_acc": correct / tested, "folds": len(subjects)}


def run_cached(pairs, subjects, model_cfg, train_cfg, machine) -> dict:
    """Our cached path, folds one after another: the library's run_loso on these subjects."""
    from tsfmicro.training.loso import run_loso
    from tsfmicro.training.runners import Runner

    start = time.perf_counter()
    folds = run_loso(pairs, model_cfg, train_cfg, Runner(machine=machine), subjects=subjects).folds
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "sample_steps": _steps(folds),
            "final_acc": _final_acc(pairs, folds), "folds": len(folds),
            "fold_seconds": round(sum(f.seconds for f in folds), 1),
            "compile": machine.compile}


def run_multi(pairs, model_cfg, train_cfg, machine, fold_cpus: float, fold_gpus: float,
              fold_batch: int, backend: str, group: str = "stacked") -> dict:
    """Every fold as tasks of `fold_batch` folds trained together (`group`: stacked or
    streams), as many tasks at once as the resources fit."""
    from tsfmicro.training.evaluation import LosoResult
    from tsfmicro.training.runners import Runner

    subjects = pairs.subject_ids()
    groups = [subjects[i : i + fold_batch] for i in range(0, len(subjects), fold_batch)]
    slots = int(min(len(groups), _slots(fold_cpus, fold_gpus)))
    threads = max(1, int(fold_cpus))
    if backend == "ray":
        seconds, done = _on_ray(pairs, groups, model_cfg, train_cfg, machine, fold_cpus,
                                fold_gpus, threads, group)
    else:
        seconds, done = _on_processes(pairs, groups, model_cfg, train_cfg, machine, slots,
                                      threads, group)
    folds = [f for group in done for f in group]
    result = LosoResult.from_folds(pairs, folds, model_cfg, train_cfg, seconds)
    busy = sum(f.seconds for f in folds)
    lanes = slots * Runner.for_task(group, fold_batch, threads, machine).at_once(fold_batch)
    return {"seconds": seconds, "sample_steps": _steps(result.folds),
            # the folds' own wall times added up, and how much of (folds at once) x wall time
            # they fill
            "fold_seconds": round(busy, 1), "busy": round(busy / (seconds * lanes), 2),
            "final_acc": result.evaluate("final", n_boot=10).acc, "folds": len(folds),
            "backend": backend, "slots": slots, "folds_per_task": fold_batch,
            "tasks": len(groups), "fold_cpus": fold_cpus, "fold_gpus": fold_gpus,
            "group": group if fold_batch > 1 else None, "compile": machine.compile}


def _on_ray(pairs, groups, model_cfg, train_cfg, machine, fold_cpus, fold_gpus, threads, group):
    import ray

    from search.security import loopback_node
    from search.trial import run_folds

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # so on loopback only, as a search's
    with loopback_node():
        ray.init(include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}})
    try:
        ref = ray.put(pairs)
        task = ray.remote(run_folds).options(num_cpus=fold_cpus, num_gpus=fold_gpus)
        # Start the workers the tasks will run in, with the library imported, before timing:
        # a search's workers live as long as its cluster, and (a) and (b) run in a process
        # that has imported everything too.
        ready = ray.remote(_worker_ready).options(num_cpus=fold_cpus, num_gpus=fold_gpus)
        slots = int(min(len(groups), _slots(fold_cpus, fold_gpus)))
        _start_workers(lambda: ray.get([ready.remote() for _ in range(slots)]), slots)
        start = time.perf_counter()
        done = ray.get([task.remote(ref, g, model_cfg, train_cfg, threads, group, machine)
                        for g in groups])
        return time.perf_counter() - start, done
    finally:
        ray.shutdown()


_WORKER: dict = {}


def _worker_start(pairs, threads: int) -> None:
    """A pool worker holds the set once (sent when it starts) and uses `threads` threads."""
    torch.set_num_threads(threads)
    _WORKER["pairs"], _WORKER["threads"] = pairs, threads


def _worker_folds(subjects, model_cfg, train_cfg, machine, group):
    from tsfmicro.training.loso import run_loso
    from tsfmicro.training.runners import Runner

    runner = Runner.for_task(group, len(subjects), _WORKER["threads"], machine)
    return run_loso(_WORKER["pairs"], model_cfg, train_cfg, runner, subjects=subjects).folds


def _worker_ready() -> int:
    """Imports what a fold task imports, then holds its worker a moment, so that tasks
    submitted together land on different workers; returns the worker's process id."""
    # torch.optim imports torch._dynamo when a process makes its first optimizer (2-5 s).
    import torch._dynamo  # noqa: F401

    import search.trial  # noqa: F401  (imported before the clock starts)
    import tsfmicro.training.loso  # noqa: F401

    time.sleep(1.0)
    return os.getpid()


def _start_workers(submit, slots: int, rounds: int = 20) -> None:
    """Call `submit` (which runs `slots` _worker_ready tasks at once and returns their process
    ids) until `slots` different workers have answered: on a loaded machine a worker may start
    after the others have taken every task of a round."""
    seen: set[int] = set()
    for _ in range(rounds):
        seen |= set(submit())
        if len(seen) >= slots:
            return
    raise RuntimeError(f"{len(seen)} of {slots} workers started after {rounds} rounds")


def _on_processes(pairs, groups, model_cfg, train_cfg, machine, slots, threads, group):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child
    with ProcessPoolExecutor(slots, mp_context=context, initializer=_worker_start,
                             initargs=(pairs, threads)) as pool:
        # Start every worker and load its set before timing, as Ray's workers are started
        # by ray.init and handed the set through its object store before the clock starts.
        _start_workers(lambda: [f.result() for f in
                                [pool.submit(_worker_ready) for _ in range(slots)]], slots)
        start = time.perf_counter()
        futures = [pool.submit(_worker_folds, g, model_cfg, train_cfg, machine, group)
                   for g in groups]
        done = [f.result() for f in futures]
        return time.perf_counter() - start, done


def _slots(fold_cpus: float, fold_gpus: float) -> float:
    cpus = os.cpu_count() or 1
    gpus = torch.cuda.device_count()
    return min(cpus / fold_cpus, gpus / fold_gpus if fold_gpus else math.inf)


def _steps(folds) -> int:
    return int(sum(f.train_samples * f.epochs for f in folds))


def _final_acc(pairs, folds) -> float:
    labels = pairs.labels.numpy()
    hits = sum(int((f.test_probs[-1].argmax(1) == labels[f.test_index]).sum()) for f in folds)
    return hits / sum(len(f.test_index) for f in folds)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def sample_subjects(subjects: list[str], k: int | None) -> list[str]:
    """All subjects, or k of them spread evenly over the sorted list."""
    if not k or k >= len(subjects):
        return list(subjects)
    return [subjects[round(i * (len(subjects) - 1) / max(k - 1, 1))] for i in range(k)]


def full_steps(pairs, epochs: int) -> int:
    """Training sample-steps of a full LOSO: every fold trains on all but its subject."""
    n = len(pairs)
    return int(sum((n - int((pairs.subjects == s).sum())) * epochs for s in pairs.subject_ids()))


def finish(r: dict, total_steps: int, flops_per_step: float, peak: float | None) -> dict:
    """Rates and, for a sampled path, the full LOSO's wall time extrapolated by sample-steps."""
    r["samples_per_second"] = round(r["sample_steps"] / r["seconds"], 1)
    if r["sample_steps"] < total_steps:
        r["measured_seconds"] = round(r["seconds"], 1)
        r["measured_sample_steps"] = r["sample_steps"]
        r["seconds"] = r["seconds"] * total_steps / r["sample_steps"]
        r["sample_steps"] = total_steps
        r["extrapolated"] = True
    r["seconds"] = round(r["seconds"], 1)
    if peak:
        r["mfu_bf16"] = round(flops_per_step * r["samples_per_second"] / peak, 4)
    return r


def search_defaults() -> dict:
    """Which path `tsfmicro search` takes unless told otherwise (search.config.Resources)."""
    from search.config import AUTO_FOLD_GPUS, Resources

    r = Resources()
    return {
        "cpu": f"c_spread: one fold per Ray task, fold_cpus={r.fold_cpus:g}, as many tasks at "
        f"once as there are CPUs (fold_batch {r.fold_batch}), eager",
        "gpu": f"c_spread: one fold per Ray task, fold_gpus={AUTO_FOLD_GPUS:g} (four fold tasks "
        f"share a GPU), eager; --fold-batch N and --set compile=... switch paths",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fold-cpus", type=float, default=1.0)
    parser.add_argument("--fold-gpus", type=float,
                        help="GPUs per task of the (c) paths (default: the search's, 0.25 on a "
                        "GPU, 0 on the CPU)")
    parser.add_argument("--fold-batch", type=int,
                        help="folds per task on the batched and streams paths (default: the "
                        "folds split evenly over the task slots that fit, one group per slot; "
                        "0: all)")
    parser.add_argument("--paths", default=",".join(PATHS),
                        help="which of a, b, c_spread, c_batched, c_streams to run (c: the "
                        "three c paths)")
    parser.add_argument("--sample-folds", type=int,
                        help="time (a) and (b) on this many folds and extrapolate (default: all)")
    parser.add_argument("--baseline-epochs", type=int,
                        help="time (a) on this many epochs of each sampled fold and extrapolate "
                        "(default: all; its cost per epoch is the same every epoch)")
    parser.add_argument("--compile", default="off",
                        help="MachineConfig.compile of (b) and the spread path: off, inductor, "
                        "cudagraphs, aot_eager")
    parser.add_argument("--backend", choices=["auto", "ray", "processes"], default="auto",
                        help="what runs the (c) tasks (auto: Ray when installed)")
    parser.add_argument("--train-pairs", action=argparse.BooleanOptionalAction, default=True,
                        help="train on the published training frame pair (the default; "
                        "--no-train-pairs: the annotated pair on every path, as before "
                        "2026-12-02)")
    parser.add_argument("--annotation", type=Path, help="real CASME II spreadsheet (mode b)")
    parser.add_argument("--json", type=Path, help="write the figures here (after every path)")
    parser.add_argument("--small", type=int, metavar="K",
                        help="a small synthetic set instead (K subjects x 4 clips): a quick "
                        "check that the benchmark runs; its figures compare nothing")
    args = parser.parse_args()

    from tsfmicro.config import MachineConfig, TrainConfig, preset
    from tsfmicro.flops import model_cost

    annotation = args.annotation
    default_sheet = (Path(__file__).resolve().parents[2] / "shared" / "annotations"
                     / "CASME2-coding-20190701.xlsx")
    if annotation is None and default_sheet.is_file() and not args.small:
        annotation = default_sheet
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.zeros(1, device=device)  # the CUDA context, before any clock starts
    fold_gpus = args.fold_gpus
    if fold_gpus is None:
        from search.config import AUTO_FOLD_GPUS

        fold_gpus = AUTO_FOLD_GPUS if device.type == "cuda" else 0.0
    backend = args.backend
    if backend == "auto":
        try:
            import ray  # noqa: F401

            backend = "ray"
        except ImportError:
            backend = "processes"
    model_cfg = preset(args.preset, num_classes=5)
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=32, train_pairs=args.train_pairs)
    machine = MachineConfig(device=args.device, compile=args.compile)
    eager = machine.replace(compile="off")
    torch.set_num_threads(max(1, int(args.fold_cpus)))
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None},
        "preset": args.preset, "epochs": args.epochs, "device": args.device,
        "compile": args.compile, "backend": backend, "train_pairs": args.train_pairs,
        "set_source": (f"small check set, {args.small} x 4" if args.small
                       else "CASME II spreadsheet rows (mode b)" if annotation
                       else "26 x 10 thinned"),
        "search_default_path": search_defaults(),
    }
    flops_per_step = 3 * model_cost(model_cfg).flops  # forward + backward ~ 3x forward
    peak = next((v for k, v in BF16_PEAK.items() if report["machine"]["gpu"]
                 and k in report["machine"]["gpu"]), None)

    def record(key: str, figures: dict) -> None:
        report[key] = finish(figures, total, flops_per_step, peak)
        a = report.get("a_baseline", {}).get("seconds")
        multi = [k for k in MULTI if k in report]
        if multi:
            report["c_fastest"] = min(multi, key=lambda k: report[k]["seconds"])
        for k, name in (("b_cached", "a_over_b"), ("c_spread", "a_over_c_spread"),
                        ("c_batched", "a_over_c_batched"), ("c_streams", "a_over_c_streams"),
                        (report.get("c_fastest"), "a_over_c")):
            if a and k in report:
                report[name] = round(a / report[k]["seconds"], 2)
        print(f"({key}) {report[key]}", flush=True)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))

    with tempfile.TemporaryDirectory(prefix="tsfmicro-bench-loso-") as tmp:
        t = time.perf_counter()
        pairs, files = build_set(Path(tmp), model_cfg.image_size, annotation, args.small)
        subjects = pairs.subject_ids()
        total = full_steps(pairs, args.epochs)
        report["set"] = {"samples": len(pairs), "subjects": len(subjects),
                         "classes": pairs.num_classes,
                         "build_seconds": round(time.perf_counter() - t, 1),
                         "training_pair_moved": pairs.moved_training_pairs(),
                         "candidate_pairs_per_sample": round(
                             float(np.mean([(f["r"] + 1) ** 2 for f in files])), 2)}
        print(f"set: {report['set']}", flush=True)
        paths = set(args.paths.split(","))
        if "c" in paths:
            paths |= set(MULTI)
        unknown = paths - set(PATHS) - {"c"}
        if unknown:
            parser.error(f"unknown paths {sorted(unknown)}; choose from {', '.join(PATHS)}")
        sampled = sample_subjects(subjects, args.sample_folds)
        slots = max(1, int(min(len(subjects), _slots(args.fold_cpus, fold_gpus))))
        fold_batch = args.fold_batch
        if fold_batch is None:
            fold_batch = math.ceil(len(subjects) / slots)
        fold_batch = fold_batch or len(subjects)
        if "a" in paths:
            baseline_cfg = train_cfg.replace(epochs=args.baseline_epochs or args.epochs)
            record("a_baseline", run_baseline(pairs, files, sampled, model_cfg, baseline_cfg,
                                              device))
        if "b" in paths:
            record("b_cached", run_cached(pairs, sampled, model_cfg, train_cfg, machine))
        if "c_spread" in paths:
            record("c_spread", run_multi(pairs, model_cfg, train_cfg, machine, args.fold_cpus,
                                         fold_gpus, 1, backend))
        if "c_batched" in paths:
            record("c_batched", run_multi(pairs, model_cfg, train_cfg, eager, args.fold_cpus,
                                          fold_gpus, fold_batch, backend))
        if "c_streams" in paths:
            if device.type == "cuda":
                record("c_streams", run_multi(pairs, model_cfg, train_cfg, eager, args.fold_cpus,
                                              fold_gpus, fold_batch, backend, "streams"))
            else:  # one task with every CPU, a fold per CPU at a time
                cpus = float(os.cpu_count() or 1)
                record("c_streams", run_multi(pairs, model_cfg, train_cfg, eager, cpus, 0.0,
                                              len(subjects), backend, "streams"))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
