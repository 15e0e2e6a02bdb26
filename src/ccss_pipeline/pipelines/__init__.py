"""One folder per Kedro pipeline; each exposes ``create_pipeline``."""
