"""Run the nmoe-sim CLI from a checkout: `python cli.py run scenarios/smoke.yaml`."""

from nmoe_sim.cli import main

if __name__ == "__main__":
    main()
