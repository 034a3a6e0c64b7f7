"""Stream processing: pure processors (processors.py) run by the embedded pipeline and by Faust agents."""
