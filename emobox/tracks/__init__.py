"""Stage 4, tracks: run, bench and cross-corpus run directories and executors."""
