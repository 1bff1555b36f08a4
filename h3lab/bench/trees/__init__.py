"""``h3lab bench trees``: a micro target compared across source trees, paired by round.

``refs``     which trees: the working tree, commits (exported with ``git
             archive``) and directories, each with its ref and commit
``runner``   the child script: one tree's micro target as JSON (works for
             trees as old as 03e8fa5, whose ``bench micro`` had no JSON output)
``measure``  rounds of fresh pinned children, the order rotated, the machine
             watched
``compare``  cases present in both trees, medians, paired ratios of times
             (Holm across refs), the table, the conclusion and the stored rows
``command``  the ``h3lab bench trees`` sub-command
"""
