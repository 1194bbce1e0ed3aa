"""Links that change over simulated time: traces, seeded fading and loss, and their schedules.

Everything here produces piecewise-constant schedules (`steps.Steps` and the synthetic
processes), combined per link into a `links.LinkProfile`; the flow network reads a link's state
from its profile when the link is used and, while flows cross it, applies each change at its time.
"""
