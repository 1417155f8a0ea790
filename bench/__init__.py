"""`make bench`: performance figures beside the raw baselines they are compared to."""
