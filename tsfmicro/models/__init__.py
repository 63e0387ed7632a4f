"""TSFmicro and its parts. `build_model(cfg)` is the entry point."""

from tsfmicro.models.tsfmicro import TSFmicro, build_model

__all__ = ["TSFmicro", "build_model"]
