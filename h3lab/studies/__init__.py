"""The research suite: parameterised notebooks run with papermill, and their report.

* ``registry``  -- discovers ``notebooks/NN_name.ipynb`` (a new notebook joins by its name)
* ``runner``    -- executes one notebook into ``data/runs/<study>/<run_id>/``
* ``report``    -- ``data/report/index.html``: the latest run of every study
* ``notebook``  -- the glue a notebook calls (run folder, results, figures, conclusion)
* ``experiments`` -- the measurements each study runs (grids, servers, load)
* ``analysis``  -- aggregation, the headline table, conclusions computed from data
* ``charts``    -- the registered Altair theme ``h3lab`` and chart helpers
* ``browser``   -- headless Chromium check of a page (figures load, console clean, screenshot)
* ``cli``       -- ``h3lab study list|run|all|report|figures|kernel``

Everything heavy (pandas, altair, papermill) is imported inside these
modules, never by ``h3lab serve``.
"""
