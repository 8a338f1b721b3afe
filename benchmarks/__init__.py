"""polystore against the raw drivers and peer libraries, in one process and one run.

Run ``python -m benchmarks --help``; docs/performance.md explains the output.
"""
