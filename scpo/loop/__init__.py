"""The loop, on top of the stages: one plan of stage commands (plan.py), run by recipes/iterate.sh or
submitted to Slurm (slurm.py)."""
