"""Speed measurements of the book's helpers, run with ``make bench`` (never part of the tests).

Each module is one benchmark, runnable as ``python -m benchmarks.<name>``; results go to
``benchmarks/results/<name>.json`` and ``.md``. :mod:`benchmarks.timing` holds what they share.
"""
