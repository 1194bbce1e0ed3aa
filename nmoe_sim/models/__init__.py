"""Feature extractors, experts, gate and the NMoE mixture."""
