"""The decision service on Ray Serve: schemas, deployments and the application builder.

`tala_ray.serving.app:build_app` is the `import_path` of `serve_configs/credit_decision*.yaml`.
Nothing here imports Ray Serve at package import time.
"""
