"""verdicts: host-side judgement of what the processes recorded, above the processes.

:mod:`verdicts.thresholds` holds the monitor thresholds (defaults, then a scheduler's
overrides, then a test's); :mod:`verdicts.monitor` judges a monitor's samples against them.
:mod:`verdicts.worker_limits` and :mod:`verdicts.workers` do the same for the workers'
reports (starvation, fairness, gaps, isolation, rates, wake latency, migrations, NUMA);
:mod:`verdicts.run` and :mod:`verdicts.run_workers` make the result document's sections.
It imports only the standard library, :mod:`schedlab_shared` (the sample schema) and the
guest's contract modules (the reports' schema), so the orchestrator judges a finished run
with it and a monitor can judge live with the same code.
"""
