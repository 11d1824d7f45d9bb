"""Sweeps of the trial over seeds × arms: YAML specs (`spec`), the results folder (`results`), Ray's start-up
(`session`), the Tune run (`tune_run`), what a worker keeps between its trials (`worker`), the seeds'
distillation targets shared between workers (`target_store`), where the time went (`profile`) and the
live table (`progress`).

`trainable` knows nothing of Ray; this package turns specs into Ray Tune runs of it.
"""
