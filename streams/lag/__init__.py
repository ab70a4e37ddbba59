"""Consumer lag: offsets and times per group, and their trend."""
