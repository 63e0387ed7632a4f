"""tsfmicro: the TSFmicro model, micro-expression datasets, LOSO training and metrics."""

__version__ = "0.1.0"
