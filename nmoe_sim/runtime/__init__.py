"""Execution backends: where client tasks really run (in-process now; Ray actors next)."""
