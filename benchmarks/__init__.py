"""Scripts that print figures; run each as a file (``.venv/bin/python benchmarks/NAME.py``).

A package so that one benchmark can reuse another's setup and mypy sees each module once.
"""
