"""Training on TRL: the DPO trainer for pair losses, the GRPO vote trainer, callbacks, and the shared launcher."""
