"""Scoring: metrics over known labels, threshold choice, the evaluation report and its plots."""
