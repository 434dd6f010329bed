"""No-op HTTP apps for the serving investigation, and a launcher that serves one of them.

The same trivial handler (parse a small JSON body, answer a small JSON body) three ways:

- `baseline_app()`: plain FastAPI, for uvicorn in one process (the baseline);
- `NoopFastAPI`: a Ray Serve deployment with a FastAPI ingress (`@serve.ingress`);
- `NoopStarlette`: a Ray Serve deployment whose `__call__` takes a starlette `Request`.

`python bench/serve_noop.py --style fastapi --port 18000 ...` starts a local Ray cluster with the
environment it was given (the RAY_SERVE_* knobs are read when Ray's processes start), deploys the
app, prints `READY <url>` and serves until SIGTERM. `bench/serve.py` drives it.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict


class NoopRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    application_id: str
    amount: float


class NoopResponse(BaseModel):
    application_id: str
    decision: str


def _answer(body: NoopRequest) -> NoopResponse:
    return NoopResponse(application_id=body.application_id, decision="approve")


def baseline_app() -> FastAPI:
    """The no-op endpoint as a plain FastAPI app (run by uvicorn in one process)."""
    app = FastAPI()

    @app.post("/v1/decisions", response_model=NoopResponse)
    async def decide(body: NoopRequest) -> NoopResponse:
        return _answer(body)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve_app(style: str, replicas: int | str, max_ongoing_requests: int) -> Any:
    """The no-op endpoint as a Ray Serve application (`style`: fastapi or starlette)."""
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    autoscaling = (
        {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 32, "upscale_delay_s": 2}
        if replicas == "auto"
        else None
    )
    options: dict[str, Any] = {
        "max_ongoing_requests": max_ongoing_requests,
        "ray_actor_options": {"num_cpus": 0.1},
        "logging_config": {"enable_access_log": False} if _access_log_off() else None,
    }
    if autoscaling:
        options["autoscaling_config"] = autoscaling
    else:
        options["num_replicas"] = int(replicas)
    options = {k: v for k, v in options.items() if v is not None}

    if style == "fastapi":
        api = baseline_app()

        @serve.deployment(name="NoopFastAPI", **options)
        @serve.ingress(api)
        class NoopFastAPI:
            pass

        return NoopFastAPI.bind()

    @serve.deployment(name="NoopStarlette", **options)
    class NoopStarlette:
        async def __call__(self, request: Request) -> JSONResponse:
            if request.method == "GET":
                return JSONResponse({"status": "ok"})
            body = NoopRequest.model_validate_json(await request.body())
            return JSONResponse(_answer(body).model_dump())

    return NoopStarlette.bind()


def _access_log_off() -> bool:
    import os

    return os.environ.get("BENCH_ACCESS_LOG", "1") == "0"


def _report_replicas(stop: threading.Event, interval_s: float = 3.0) -> None:
    """Print the running replica count of each deployment whenever it changes (autoscaling checks)."""
    from ray import serve

    last: dict[str, int] = {}
    while not stop.wait(interval_s):
        deployments = serve.status().applications["noop"].deployments
        counts = {name: d.replica_states.get("RUNNING", 0) for name, d in deployments.items()}
        if counts != last:
            print(f"REPLICAS {counts}", flush=True)
            last = counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", choices=["fastapi", "starlette"], default="fastapi")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--replicas", default="1", help="a number, or 'auto' (1-2 replicas, autoscaling)")
    parser.add_argument("--max-ongoing-requests", type=int, default=64)
    parser.add_argument("--proxy-location", default="HeadOnly", choices=["HeadOnly", "EveryNode", "Disabled"])
    args = parser.parse_args()

    import ray
    from ray import serve

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port}, proxy_location=args.proxy_location)
    serve.run(serve_app(args.style, args.replicas, args.max_ongoing_requests), name="noop", route_prefix="/")
    print(f"READY http://127.0.0.1:{args.port}", flush=True)
    stop = threading.Event()
    threading.Thread(target=_report_replicas, args=(stop,), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
