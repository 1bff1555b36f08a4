"""``h3lab tune``: find the configuration that serves a workload best, with the evidence.

* ``space``     -- the search space over the ``Config`` tree, derived from the
  strategy registries plus one table of numeric ranges (``KNOBS``)
* ``objective`` -- one trial = one real measurement (``ServerProcess`` + verify + load)
* ``study``     -- Optuna study creation/resume (SQLite under ``data/tuning/`` or any RDB URL)
* ``select``    -- re-measure the top candidates beside the presets, interleaved,
  and declare a winner only when its interval clears the noise
* ``report``    -- the winner table, ``best.toml`` and the rows in the results store
* ``cli``       -- ``h3lab tune ...``
* ``run``       -- the whole pipeline as one function (``tune(...)``), used by the
  CLI and the notebook

This package imports nothing heavy at import time: ``h3lab.cli`` imports
``h3lab.tune.cli`` to register the sub-command even for ``h3lab serve``, so
optuna and pandas are imported inside the functions that need them.
"""

from __future__ import annotations
