"""The MLflow pyfunc of a registered tsfmicro model, logged as "models from code".

MLflow runs this file when the model is loaded (nothing is unpickled). It needs
only the tsfmicro distribution (its tsfmicro and search packages; mlflow to load
it): the weights and the config are the model's artifacts.

Input: a DataFrame with columns `onset_path` and `apex_path` (image files).
Output: a DataFrame of class probabilities, one column per class, plus `label`.
"""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from search.schema import MODEL_DIR_ARTIFACT


class TsfmicroPyfunc(PythonModel):
    def load_context(self, context):
        from pathlib import Path

        from tsfmicro.inference import Predictor

        self.predictor = Predictor.load(Path(context.artifacts[MODEL_DIR_ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        rows = []
        for onset, apex in zip(model_input["onset_path"], model_input["apex_path"], strict=True):
            prediction = self.predictor.predict_files(onset, apex)
            rows.append({**prediction.probabilities, "label": prediction.label})
        return pd.DataFrame(rows)


mlflow.models.set_model(TsfmicroPyfunc())
