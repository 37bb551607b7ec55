"""Measurements over runs: the shared definitions, the logit lens, patching, measures."""
