"""Stage 3, heads: the downstream contract, fused heads, hyper-parameter sweeps and metrics."""
