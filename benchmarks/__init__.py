"""hierot's benchmarks: outside the package, out of the default test run
(``python -m benchmarks``)."""
