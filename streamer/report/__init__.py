"""``streamer report``: a run's ``--record`` file (and its keyframes folder) as one self-contained
HTML page, and a PDF of it (docs/report.md)."""
