"""Turns the benchmarks' results JSON into the README's results summary and docs/RESULTS.md (`reporting.results`)."""
