"""The registered pyfunc model, logged as code (MLflow's "models from code").

MLflow copies this file into the model and runs it when the model is loaded; ``set_model``
names the object to serve. Nothing of the model is a pickled Python object: the code is this
file plus the ``llmrec_core`` package (``code_paths``), and the weights are the bundle's
safetensors and JSON files.
"""

import mlflow

from llmrec_core.registry.pyfunc import LlmrecPyfunc

mlflow.models.set_model(LlmrecPyfunc())
