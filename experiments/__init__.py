"""Experiments whose measurements are in results/ or bench/results/ (run as python -m experiments.NAME)."""
