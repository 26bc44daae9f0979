"""What the tests and benchmarks share that is not the platform: generated data, launchers."""
