"""Evaluation-only code, outside the wheel: the labelled corpus generator and its scorers
(benchmarks/eval_rlm.py and the detector tests use them)."""
