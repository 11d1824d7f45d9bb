"""Sweeps of the trial over seeds × arms: YAML specs (`spec`), the results folder (`results`), Ray's start-up
(`session`), the Tune run with one teacher per seed (`tune_run`) and its live table (`progress`).

`trainable` knows nothing of Ray; this package turns specs into Ray Tune runs of it.
"""
