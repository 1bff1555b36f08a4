"""The research suite: parameterised notebooks run with papermill, and their report.

* ``registry``  -- discovers ``notebooks/NN_name.ipynb`` (a new notebook joins by its name)
* ``runner``    -- executes one notebook into ``data/runs/<study>/<run_id>/``
* ``report``    -- ``data/report/index.html``: the latest run of every study
* ``notebook``  -- the glue a notebook calls (run folder, results, figures, conclusion)
* one module per study, each with its plan (full and quick sizes), measurement,
  summaries and conclusion: ``route_cache`` (01), ``router_scaling`` (02),
  ``event_pool`` (03), ``memory`` (04), ``middleware`` (05),
  ``load_degradation`` (06), ``peers`` (07), ``headline`` (00)
* ``common``    -- plans, formatting, frame helpers, paired comparisons of arms
* ``loadrun``   -- load measurement on ``bench.rounds`` (saturating, sustained runs)
* ``study_apps`` -- server apps with handlers that await and request bodies
* ``stats``, ``validity`` -- the statistics and the validity record of every run
* ``provenance`` -- run id, commit, machine, full/quick, validity of runs and figures;
  which runs the summary may combine
* ``compare``   -- ``h3lab study compare A B``: per-metric ratios with intervals
* ``charts``    -- the registered Altair theme ``h3lab`` and chart helpers
* ``browser``   -- headless Chromium check of a page (figures load, console clean, screenshot)
* ``cli``       -- ``h3lab study list|run|all|report|figures|compare|kernel``

Everything heavy (pandas, altair, papermill) is imported inside these
modules, never by ``h3lab serve``.
"""
