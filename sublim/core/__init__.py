"""The bottom of the import graph, free of torch and Ray: what every other package reads and writes.

`config` (the trial configuration, its arm label and trial id), `mitigations` (every mitigation,
defined once), `schema` (the model's layout and the step trace's columns), `files` (results-folder
file names, atomic writes) and `versions` (library versions stored with results).
"""
