"""The local stack: process management around the library, not part of it.

- :mod:`llmrec_stack.stack`: ``llmrec up``/``down`` (Airflow's components and an MLflow server
  on 127.0.0.1, with PID files and generated secrets);
- :mod:`llmrec_stack.pipeline`: ``llmrec pipeline`` (the three DAGs through ``dag.test()``);
- :mod:`llmrec_stack.airflow_env`: the Airflow home and environment both use;
- :mod:`llmrec_stack.report`: what `llmrec pipeline` prints at the end.

The library (``llmrec_core``) never imports this package; the DAGs import only
``llmrec_core.orchestration`` (assets, task bodies, defaults).
"""
