"""Each method end to end: which driver runs which client tasks, and how it is evaluated."""
