"""Rasa NLU for streife: training, loading, parsing and evaluation."""
