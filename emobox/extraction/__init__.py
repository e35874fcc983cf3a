"""Stage 2, features: the upstream contract, checkpoints, extraction engine and the feature store."""
