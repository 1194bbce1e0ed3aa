"""nmoe-sim: federated training and networked inference of a Networked Mixture-of-Experts."""

from nmoe_sim.native import use_if_current

__version__ = "0.1.0"

# Before anything imports the network core: its compiled build, if current (see native.py).
use_if_current()
