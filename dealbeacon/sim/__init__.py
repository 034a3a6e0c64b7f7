"""Simulation: the buying-committee simulator, its HTTP replay, and the demo traffic and room."""
