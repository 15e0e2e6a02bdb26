"""Project settings: Kedro defaults, with telemetry off."""



# kedro-telemetry must never prompt or send anything from this project.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-telemetry",)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
