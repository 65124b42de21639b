"""Entry point: `streamtrain-operator` (or `python -m streamtrain_operator`).

Reads the settings once, serves metrics, registers the handlers and runs kopf.
"""

from __future__ import annotations

import argparse
import logging
import sys

import kopf

from streamtrain_operator.handlers import register
from streamtrain_operator.metrics import OperatorMetrics
from streamtrain_operator.settings import PREFIX, OperatorSettings, SettingsError


def main(argv: list[str] | None = None) -> int:
    """Run the operator until it is stopped; 2 on invalid settings."""
    argparse.ArgumentParser(
        prog="streamtrain-operator",
        description="Run the streamtrain operator: watch StreamingTrainingJobs and run their "
                    "training, evaluation and online phases as Kubernetes Jobs.",
        epilog=f"Settings come from {PREFIX}* environment variables (see operator/README.md); "
               "the Kubernetes credentials from the pod's service account or KUBECONFIG.",
    ).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = OperatorSettings.from_env()
    except SettingsError as error:
        print(f"streamtrain-operator: {error}", file=sys.stderr)
        return 2
    metrics = OperatorMetrics()
    if settings.metrics_port:
        metrics.serve(settings.bind_address, settings.metrics_port)
    registry = kopf.OperatorRegistry()
    register(settings, metrics, registry)
    kopf.run(
        registry=registry,
        settings=settings.to_kopf(),
        standalone=not settings.peering,
        peering_name=settings.peering or None,
        liveness_endpoint=settings.liveness_endpoint,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
