"""Reports of runs: the loop (runs.py) and online GRPO (grpo.py), tables and plots from the stage files."""
