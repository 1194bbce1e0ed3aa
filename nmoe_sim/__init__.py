"""nmoe-sim: federated training and networked inference of a Networked Mixture-of-Experts."""

__version__ = "0.1.0"
