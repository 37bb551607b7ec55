"""One module per chapter: its experiment (configs and calls), and the study's numbers."""
