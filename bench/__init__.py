"""`make bench`: the performance suite (see docs/benchmarks.md). Entry point: `python -m bench`."""
