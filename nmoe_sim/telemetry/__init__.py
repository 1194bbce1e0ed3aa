"""Records (trace, metrics) and the only exporter of results: the run directory."""
