"""Evaluation, calibration, benchmarks and the load test, run by `python -m assistant ...`."""
