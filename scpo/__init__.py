"""scpo: consistency-driven LLM post-training (ScPO, Self-Rewarding, CREAM, SCIR, TTRL)."""

__version__ = "0.1.0"
