"""Reports people can look at: PNG figures, an index.html and a Chrome-trace timeline of a run
or a sweep directory (`nmoe-sim report PATH`)."""

from nmoe_sim.report.build import ReportError, build_report

__all__ = ["ReportError", "build_report"]
