"""The bottom layer: config and presets, data builders, models, training, the run store."""
__version__ = "0.1.0"
