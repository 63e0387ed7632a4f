"""The tsfmicro dashboard: leaderboards, trials, searches and registered models from MLflow.

Run it with `tsfmicro dashboard --tracking-uri URI` (or
`streamlit run dashboards/app.py -- --tracking-uri URI`). This script only routes; each page
lays out what `dashboards.data` reads and `dashboards.tables` computes.
"""

import streamlit as st

from dashboards import data

# A 224 px sidebar (Streamlit's default is wider) leaves the tables about 1,200 px of a
# 1600 px wide window.
st.set_page_config(page_title="tsfmicro dashboard", page_icon=":material/leaderboard:",
                   layout="wide", initial_sidebar_state=224)

PAGES = [
    st.Page("views/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:",
            default=True),
    st.Page("views/overview.py", title="Overview", icon=":material/dashboard:",
            url_path="overview"),
    st.Page("views/trial.py", title="Trial", icon=":material/science:", url_path="trial"),
    st.Page("views/search.py", title="Search", icon=":material/travel_explore:",
            url_path="search"),
    st.Page("views/registry.py", title="Registry", icon=":material/inventory_2:",
            url_path="registry"),
]

page = st.navigation(PAGES)
with st.sidebar:
    st.caption(f"MLflow store: `{data.tracking_uri()}`")
    if st.button("Reload from MLflow", icon=":material/refresh:"):
        st.cache_data.clear()
    st.caption(f"Queries are cached for {data.TTL_S} s.")
page.run()
