"""Speed of the synthetic benchmark generator: frames per second, per dataset layout.

For each layout it reports the one-off start-up (importing torch and locating the source
faces with MTCNN), rendering alone in this process (no disk), and writing full clips
through `write_dataset` with a process pool (JPEG encoding and atomic writes included).

    python benchmarks/bench_synth.py                 # all layouts, every core
    python benchmarks/bench_synth.py --workers 1 --layouts casme2/raw
    python benchmarks/bench_synth.py --smoke         # a few frames, to check it runs
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

LAYOUTS = ("casme2/raw", "casme2/cropped", "samm/samm", "casme3/part_a", "mmew/micro_expression")


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="dataset/layout list")
    parser.add_argument("--subjects", type=int, default=4, help="subjects per run (default 4)")
    parser.add_argument("--clips", type=int, default=5, help="clips per subject (default 5)")
    parser.add_argument("--workers", type=int, help="write processes (default: every core)")
    parser.add_argument("--smoke", action="store_true", help="one subject, one clip")
    args = parser.parse_args()
    if args.smoke:
        args.subjects, args.clips = 1, 1

    from tsfmicro.synth import SynthConfig, get_sources, plan_dataset, write_dataset
    from tsfmicro.synth.render import Renderer

    started = time.perf_counter()
    first = plan_dataset(SynthConfig(subjects=args.subjects))
    get_sources(first.context.source_indices())
    print(f"start-up (torch, MTCNN, {args.subjects} faces): {time.perf_counter() - started:.1f} s")
    print(f"{'layout':24} {'frame':>9} {'render f/s':>11} {'write f/s':>10} {'frames':>7}")
    for item in args.layouts.split(","):
        dataset, layout = item.split("/")
        config = SynthConfig(
            dataset=dataset,
            layout=layout,
            subjects=args.subjects,
            clips_per_subject=args.clips,
            full_clips=True,
        )
        plan = plan_dataset(config)
        get_sources(plan.context.source_indices())
        renderer = Renderer(plan.context)
        for clip in plan.clips:  # identities and fields built outside the timing
            renderer.frame(clip, clip.frames[0])
        tick = time.perf_counter()
        for clip in plan.clips:
            for n in clip.frames:
                renderer.frame(clip, n)
        render_rate = plan.frame_count / (time.perf_counter() - tick)
        with tempfile.TemporaryDirectory() as out:
            result = write_dataset(config, out, workers=args.workers)
        width, height = config.look().frame_size
        print(
            f"{item:24} {width:>4}x{height:<4} {render_rate:>11.0f} "
            f"{result.frames / result.seconds:>10.0f} {result.frames:>7}"
        )


if __name__ == "__main__":
    main()
