"""The MLflow pyfunc of a registered tsfmicro model, logged as "models from code".

MLflow runs this file when the model is loaded (nothing is unpickled). It needs
only the tsfmicro distribution (its tsfmicro and search packages; mlflow to load
it), which travels with the model as a wheel (search.portable): the weights and
the config are the model's artifacts.

Input: a DataFrame, each row one of
- `onset_path` and `apex_path`: image files on the machine that runs the model;
- `onset_image` and `apex_image`: the bytes of two image files, base64-encoded (what the
  input example holds, and what a client sends to a server on another machine);
- `clip_path`: a folder of a clip's frames (the first is the onset; the apex is the frame
  whose face differs most from it).
Output: a DataFrame of class probabilities, one column per class, plus `label`.
"""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from search.schema import MODEL_DIR_ARTIFACT

INPUTS = ("onset_path", "apex_path", "onset_image", "apex_image", "clip_path")


def _given(value) -> bool:
    return isinstance(value, str) and value != ""


class TsfmicroPyfunc(PythonModel):
    def load_context(self, context):
        from pathlib import Path

        from tsfmicro.inference import Predictor

        self.predictor = Predictor.load(Path(context.artifacts[MODEL_DIR_ARTIFACT]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        rows = []
        for number, row in enumerate(model_input.to_dict("records")):
            prediction = self._predict_row(number, row)
            rows.append({**prediction.probabilities, "label": prediction.label})
        return pd.DataFrame(rows)

    def _predict_row(self, number: int, row: dict):
        import base64
        import binascii

        from tsfmicro.errors import InputError

        if _given(row.get("clip_path")):
            return self.predictor.predict_clip(row["clip_path"])
        if _given(row.get("onset_image")) and _given(row.get("apex_image")):
            frames = []
            for column in ("onset_image", "apex_image"):
                try:
                    frames.append(base64.b64decode(row[column], validate=True))
                except (binascii.Error, ValueError):
                    raise InputError(
                        f"row {number}: {column} is not base64 (give an image file's bytes "
                        "base64-encoded)"
                    ) from None
            return self.predictor.predict_images(
                *frames, f"row {number} onset_image", f"row {number} apex_image"
            )
        if _given(row.get("onset_path")) and _given(row.get("apex_path")):
            return self.predictor.predict_files(row["onset_path"], row["apex_path"])
        given = [c for c in INPUTS if _given(row.get(c))]
        raise InputError(
            f"row {number}: give onset_path and apex_path, onset_image and apex_image "
            f"(base64), or clip_path (given: {', '.join(given) or 'none'})"
        )


mlflow.models.set_model(TsfmicroPyfunc())
