"""Registered models: versions, aliases, the champion's scores, the code that loads each
version (pyfunc, tsfmicro pull, mlflow models serve), a download."""

from functools import partial

import pandas as pd
import streamlit as st

from dashboards import data, tables, ui
from search.schema import CHAMPION, VersionTag, score_metric
from tsfmicro.metrics import METRICS
from tsfmicro.vocab import EVAL_MODES, OPTIMISTIC_MODES

uri = data.tracking_uri()
st.title("Model registry")
ui.read(data.check, uri)
versions = ui.read(data.registry, uri)
if versions.empty:
    st.info(f"No tsfmicro model is registered in `{uri}` yet. A search registers its best "
            "configuration when it ends (or `tsfmicro register NAME`).", icon=":material/inbox:")
    st.stop()

for name, group in versions.groupby("model", sort=True):
    st.header(name)
    champion = group[group["aliases"].str.split(", ").map(lambda a: CHAMPION in a)]
    if champion.empty:
        st.info(f"No version holds the `{CHAMPION}` alias.")
    else:
        top = champion.iloc[0]
        mode = top.get(VersionTag.EVAL_MODE)
        mode = mode if isinstance(mode, str) else "final"
        st.markdown(f"**{CHAMPION}: version {top['version']}** (search "
                    f"`{top.get(VersionTag.SEARCH)}`, trial `{top.get(VersionTag.TRIAL_ID)}`, "
                    f"chosen on {mode} {str(top.get(VersionTag.OBJECTIVE, '?')).upper()})")
        for shown_mode in [m for m in EVAL_MODES if score_metric(m, "acc") in group]:
            if pd.isna(top.get(score_metric(shown_mode, "acc"))):
                continue
            cols = st.columns(len(METRICS) + 1)
            cols[0].markdown(f"LOSO scores, {tables.mode_label(shown_mode)}")
            for col, m in zip(cols[1:], METRICS, strict=True):
                value = top[score_metric(shown_mode, m)]
                col.metric(f"{shown_mode} {tables.METRIC_LABELS[m]}", f"{value:.3f}")
        if any(pd.notna(top.get(score_metric(m, "acc"))) for m in OPTIMISTIC_MODES):
            st.caption(ui.OPTIMISTIC_NOTE)
    numbers = group["version"].tolist()
    default = int(champion.iloc[0]["version"]) if not champion.empty else numbers[0]
    version = st.selectbox("Version", numbers, index=numbers.index(default),
                           key=f"rg_version_{name}",
                           format_func=lambda v, g=group: f"{v} ({a})" if (
                               a := g.loc[g['version'] == v, 'aliases'].iloc[0]) else str(v))
    code = tables.load_code(name, version, uri)
    st.markdown(f"**Load version {version}** in Python (MLflow pyfunc):")
    st.code(code["python"], language="python")
    st.markdown("or download it and predict with `tsfmicro` (`predict --clip FOLDER` takes a "
                "clip's frames instead of a pair):")
    st.code(code["pull"], language="bash")
    st.markdown("or serve it over HTTP with MLflow: `--env-manager uv` (uv on the PATH) "
                "builds the version's own environment from the pinned requirements and the "
                "tsfmicro wheel stored with it, once; the server reads the image paths it is "
                "sent, or `onset_image`/`apex_image` as base64 image files:")
    st.code(code["serve"], language="bash")
    is_champion = not champion.empty and version == int(champion.iloc[0]["version"])
    if is_champion:
        st.caption(f"`{name}@{CHAMPION}` in place of `{name}/{version}` (or `models:/{name}@"
                   f"{CHAMPION}`) follows the alias when a later search moves it.")
    st.download_button(
        f"Download version {version} (zip)", data=partial(data.model_zip, uri, name, version),
        file_name=f"{name}-v{version}.zip", mime="application/zip", on_click="ignore",
        icon=":material/download:", key=f"rg_download_{name}",
    )
    columns = ["version", "aliases", "created", VersionTag.SEARCH, VersionTag.TRIAL_ID,
               VersionTag.EVAL_MODE, VersionTag.OBJECTIVE,
               *(score_metric(m, s) for m in EVAL_MODES for s in METRICS), "run_id", "status"]
    ui.table(group[[c for c in columns if c in group]], f"rg_versions_{name}",
             column_order=tables.registry_columns(group, columns),
             column_config={"created": st.column_config.DatetimeColumn(
                 "created (UTC)", format="YYYY-MM-DD HH:mm"),
                 **{score_metric(m, s): st.column_config.NumberColumn(
                     f"{m} {tables.METRIC_LABELS[s]}", format="%.3f")
                    for m in EVAL_MODES for s in METRICS}})
    if isinstance(group["description"].iloc[0], str):
        st.caption(group["description"].iloc[0])
