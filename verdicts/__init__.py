"""verdicts: host-side judgement of what the processes recorded, above the processes.

:mod:`verdicts.thresholds` holds the monitor thresholds (defaults, then a scheduler's
overrides, then a test's); :mod:`verdicts.monitor` judges a monitor's samples against them.
It imports only the standard library and :mod:`schedlab_shared` (the sample schema), so the
orchestrator judges a finished run with it and a monitor can judge live with the same code.
"""
