"""Benchmarks, run as scripts (`python bench/pipeline.py`); a package so that they import each other as bench.*."""
