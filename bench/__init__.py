"""``make bench``: figures as ratios measured in the same run (never asserted in tests)."""
