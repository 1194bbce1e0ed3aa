"""Aggregation rules and the drivers that decide when clients work and what they exchange."""
