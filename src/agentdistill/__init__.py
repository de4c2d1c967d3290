"""agentdistill: distill a small open language model into a reliable tool-calling ReAct agent."""

__version__ = "0.1.0"
