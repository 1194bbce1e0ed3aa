"""Losses, training loops and the client-side work of every stage and baseline."""
