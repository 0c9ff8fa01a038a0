"""Reports of runs: the loop (runs.py), online GRPO (grpo.py) and `scpo compare` (compare.py), tables and plots
from the stage files."""
