#!/bin/sh
# Build the ns-3 generator. Debian bookworm: apt-get install -y libns3-dev g++ (ns-3 3.37).
# The binary goes to $NS3BUILD (default /tmp/ns3build), never into the repository.
# The libraries are named directly: `pkg-config --cflags --libs ns3-...` on bookworm gives a bogus
# "-I/usr\;" flag and names libgsl.so by absolute path, absent without libgsl-dev.
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${NS3BUILD:-/tmp/ns3build}
mkdir -p "$OUT"
g++ -std=c++17 -O2 -o "$OUT/tcp_rate_steps" "$HERE/tcp_rate_steps.cc" \
    -lns3-core -lns3-network -lns3-internet -lns3-point-to-point -lns3-applications \
    -lns3-traffic-control
echo "$OUT/tcp_rate_steps"
