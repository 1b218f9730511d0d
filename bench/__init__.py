"""Benchmarks of fhir-ccm over HTTP: ``python -m bench [SUITE...]``; see README.md."""
