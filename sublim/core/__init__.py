"""The bottom of the import graph, free of torch and Ray: what every other package reads and writes.

`config` (the trial configuration, its arm label and trial id), `mitigations` (every mitigation,
defined once), `schema` (the model's layout and the step trace's columns), `files` (results-folder
file names, atomic writes, bounded reads, OS errors in words), `trial_folder` (the one check of a trial
folder), `records` (the shapes of sweep.json's other records), `text` (text from untrusted files made
safe: one line, file-name stems, inert Markdown), `machine` (the memory a trial may use) and `versions`
(library versions stored with results).
"""
