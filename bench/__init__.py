"""batchline's benchmarks: `uv run python -m bench` (see README.md, "Benchmarks")."""
