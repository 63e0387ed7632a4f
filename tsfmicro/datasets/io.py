"""The frame readers under their older address; they live in `tsfmicro.fileio`.

Kept so that `from tsfmicro.datasets.io import read_frame` (inference, benchmarks) goes on
working. New code imports `tsfmicro.fileio` (or `tsfmicro.datasets`) instead.
"""

from tsfmicro.fileio import GrayscalePolicy, load_frame, read_frame

__all__ = ["GrayscalePolicy", "load_frame", "read_frame"]
