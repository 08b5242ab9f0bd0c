"""Honest verdicts: the rules that grade a Chaos Toolkit journal (``rules``) and the CI gate
that runs experiments and reports them (``gate``).
"""
