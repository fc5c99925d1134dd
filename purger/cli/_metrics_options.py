"""The metrics option group: where a run's own Prometheus metrics go (docs/dashboards.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from purger.cli._app import OUTPUT_PANEL
from purger.cli._options import number, number_value, option_group
from purger.config.schema import from_flag, setting_of
from purger.errors import UsageError
from purger.observability.publish import MetricsSettings

__all__ = ["MetricsSettings"]


@option_group
def _metrics(
    metrics_port: Annotated[
        str | None,
        number(
            "metrics.port",
            "Serve purger's Prometheus metrics on this port while it runs (0: any free one).",
            OUTPUT_PANEL,
        ),
    ] = None,
    metrics_address: Annotated[
        str,
        typer.Option(
            "--metrics-address",
            help="Address the metrics page listens on (0.0.0.0 in a pod).",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = "127.0.0.1",
    metrics_linger: Annotated[
        str,
        number(
            "metrics.linger",
            "With --metrics-port: seconds to keep serving the final figures after the run.",
            OUTPUT_PANEL,
        ),
    ] = "0",
    metrics_textfile: Annotated[
        Path | None,
        typer.Option(
            "--metrics-textfile",
            help="Write the metrics here (atomically, every second and at the end) for "
            "node_exporter's textfile collector.",
            metavar="FILE.prom",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    metrics_pushgateway: Annotated[
        str | None,
        typer.Option(
            "--metrics-pushgateway",
            help="Push the metrics to this Pushgateway every few seconds and at the end.",
            metavar="URL",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
) -> MetricsSettings:
    if metrics_pushgateway is not None:
        from_flag(setting_of("metrics.pushgateway"), metrics_pushgateway)  # a URL, as the key's
    if metrics_textfile is not None and not metrics_textfile.parent.is_dir():
        raise UsageError(f"--metrics-textfile {metrics_textfile}: no such directory")
    return MetricsSettings(
        port=number_value("metrics.port", metrics_port),
        address=metrics_address,
        linger=number_value("metrics.linger", metrics_linger),
        textfile=metrics_textfile,
        pushgateway=metrics_pushgateway,
    )
