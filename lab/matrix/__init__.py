"""The passthrough matrix: every protocol against every router profile (model in result.py, outputs beside it)."""
