"""The book around the library: papermill + Jupyter Book pipeline, charts, widgets, CLI, bench."""
