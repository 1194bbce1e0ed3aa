"""The simulated network: message sizes, the channel every byte crosses, devices' compute time."""
