"""Validity is data: whether a run's figures may be believed, and why not.

A measurement on a disturbed or mis-set machine looks exactly like a clean
one. So every measured run records *checks* next to its results, and each
check says ``valid``, ``unstable`` or ``invalid``:

================================  =================================================  ==========
check (``Check.name``)            rule (defaults; every bound is stated in the text)  failing ->
================================  =================================================  ==========
``server_cpu``                    the server used >= 90% of one core during a        invalid
                                  saturating closed-loop phase (else it was not the
                                  bottleneck: client-bound or disturbed)
``client_headroom``               the load generator used < 90% of its core          invalid
                                  (a saturated client measures itself)
``open_loop_rate``                an open-loop run achieved its target rate           invalid
                                  within 1% (else the latencies are of another rate)
``ceiling``                       no figure above the ceiling measured in the same    invalid
                                  run (e.g. a framework faster than bare httptools)
``machine``                       no other process used > 20% of a core, and the      invalid
                                  1-minute load average <= 1.5 x cores
``stability``                     sample CV <= 10% and drift (first vs last third     unstable
                                  of the samples, by median) <= 10%
``warning``                       any other unstable-sample warning (e.g. a           unstable
                                  micro-benchmark's ``BenchmarkStabilityWarning``)
================================  =================================================  ==========

``invalid`` makes the run not ``ok``: its conclusion must open with
``**Invalid run:**`` and claim no difference (``h3lab.studies.runner`` does
the first; ``invalid_paragraph`` / ``claims_allowed`` help with the second).
``unstable`` keeps the run ``ok`` but every warning text is kept and shown.

How a notebook records validity
-------------------------------
Measurement code feeds the process-wide recorder; the notebook saves it::

    from h3lab.studies import validity
    rec = validity.begin(out_dir)     # where the run starts (notebook.start): an empty
                                      # process-wide recorder, stability warnings captured
    rec.server_cpu(93.5, label="performance round 2")
    rec.stability([...], label="balanced req/s")
    ...
    validity.save()                   # -> <run>/validity.json (the runner merges it
                                      #    into meta.json["validity"])
    text = validity.guard_claim(validity.current().result(), "2.1x faster [...]")

Under the runner the recorder also saves itself when the kernel exits, so a
check is never lost; a notebook run by hand must call ``save``.

``h3lab.bench.rounds.run_rounds`` records its own checks (server and client
CPU, machine state) into ``current()`` unless given another recorder. The
runner adds the machine state before and after the notebook, so every run
has a ``validity`` even when its notebook recorded nothing.

``PhaseCpu`` measures the CPU of a process tree (by pid, through psutil) and
of this process plus its reaped children (wrk) over one phase; the load
drivers use it.

Module map
----------
``checks`` (the pure checks, ``Check`` and ``Validity``), ``sampling``
(``machine_state``, ``ProcessCpu``, ``PhaseCpu``), ``recorder`` (the
process-wide recorder, ``save``/``load``), ``conclusion`` (the paragraphs and
``frame_conclusion``). This package re-exports their public names: import
them from ``h3lab.studies.validity``.
"""

from __future__ import annotations

from h3lab.studies.validity.checks import (
    CEILING_TOLERANCE,
    CLIENT_CPU_MAX_PERCENT,
    LOAD_PER_CORE_MAX,
    MAX_CV,
    MAX_DRIFT,
    OPEN_LOOP_RATE_TOLERANCE,
    OTHER_CPU_MAX_PERCENT,
    SERVER_CPU_MIN_PERCENT,
    Check,
    Status,
    Validity,
    check_ceiling,
    check_client_headroom,
    check_machine,
    check_open_loop_rate,
    check_server_cpu,
    check_stability,
    drift,
)
from h3lab.studies.validity.conclusion import (
    DIAGNOSIS_NOTE,
    INVALID_PREFIX,
    UNSTABLE_PREFIX,
    claims_allowed,
    frame_conclusion,
    guard_claim,
    invalid_paragraph,
    unstable_paragraph,
)
from h3lab.studies.validity.recorder import (
    RUN_DIR_ENV,
    VALIDITY_FILE,
    ValidityRecorder,
    begin,
    current,
    load,
    reset,
    save,
)
from h3lab.studies.validity.sampling import PhaseCpu, ProcessCpu, machine_state

__all__ = [
    "CEILING_TOLERANCE",
    "CLIENT_CPU_MAX_PERCENT",
    "DIAGNOSIS_NOTE",
    "INVALID_PREFIX",
    "LOAD_PER_CORE_MAX",
    "MAX_CV",
    "MAX_DRIFT",
    "OPEN_LOOP_RATE_TOLERANCE",
    "OTHER_CPU_MAX_PERCENT",
    "RUN_DIR_ENV",
    "SERVER_CPU_MIN_PERCENT",
    "UNSTABLE_PREFIX",
    "VALIDITY_FILE",
    "Check",
    "PhaseCpu",
    "ProcessCpu",
    "Status",
    "Validity",
    "ValidityRecorder",
    "begin",
    "check_ceiling",
    "check_client_headroom",
    "check_machine",
    "check_open_loop_rate",
    "check_server_cpu",
    "check_stability",
    "claims_allowed",
    "current",
    "drift",
    "frame_conclusion",
    "guard_claim",
    "invalid_paragraph",
    "load",
    "machine_state",
    "reset",
    "save",
    "unstable_paragraph",
]
