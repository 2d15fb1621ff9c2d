"""Benchmark suites: gemm, conv, pool and train, each a ``run(device, ...)`` yielding case results."""
