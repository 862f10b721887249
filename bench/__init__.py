"""Speed and quality measurements (``make bench``): each module prints a table and exposes ``run()``."""
