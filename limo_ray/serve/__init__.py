"""Serve checkpoints on an OpenAI-compatible Ray Serve endpoint: `run_server`, `build_app`, `serve_config`.

Importing this package does not import Ray or vLLM; `limo_ray.serve.app:build_app` is the import path a
RayService (`serveConfigV2`) or `serve run` names.
"""

from limo_ray.serve.app import DEFAULT_APP_NAME, IMPORT_PATH, AppArgs, app_args, build_app, engine_specs, serve_config
from limo_ray.serve.server import ServerHandle, run_server

__all__ = [
    "DEFAULT_APP_NAME",
    "IMPORT_PATH",
    "AppArgs",
    "ServerHandle",
    "app_args",
    "build_app",
    "engine_specs",
    "run_server",
    "serve_config",
]
