"""LOSO training of TSFmicro: data in memory, batched augmentation, folds, evaluation modes."""
