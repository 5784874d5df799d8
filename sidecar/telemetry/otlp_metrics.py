"""OTLP metrics: the numbers of `/metrics`, pushed to a collector through the OTel SDK's MeterProvider.

Asked for only by the standard variables: `OTEL_METRICS_EXPORTER` naming `otlp`, or (when
it is unset) `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`. Nothing
asks: nothing is built, no OTel metrics module is imported, no exporter thread runs. The
SDK reads the rest itself: `OTEL_METRIC_EXPORT_INTERVAL` (ms, default 60000), headers,
timeout, compression, `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.

What is exported, so that a collector-only user loses nothing:
- the four histograms of the OpenTelemetry MCP conventions (`mcp.client.operation.duration`
  ...), unit `s`, the conventions' buckets, the same observations `/metrics` counts;
- the contract series under their Prometheus names less the suffixes Prometheus adds back
  when it translates OTLP (`_total` of counters, `_seconds` of unit `s`): `mcp_server_up`,
  `mcp_server_reconnect_attempts` ... with the same labels, so the shipped alerts and
  dashboard work on what a collector writes into Prometheus. Gauges and counters are
  observed from the snapshot at each export; histograms are recorded as events arrive.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .conventions import BUCKETS, CONVENTION_METRICS, Observation
from .metrics import DURATION_BUCKETS, Samples, SidecarMetrics

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions
    from opentelemetry.metrics import Observation as OtelObservation
    from opentelemetry.sdk.metrics import MeterProvider

__all__ = ["MetricExport", "configure_metric_export", "export_protocol", "shutdown_metric_export"]

SHUTDOWN_TIMEOUT = 2.0  # seconds the last export at exit may take
_PROTOCOLS = ("http/protobuf", "grpc")
# Contract histograms: the Prometheus name, and the OTLP name that Prometheus translates back to it.
_CONTRACT_HISTOGRAMS = {
    "mcp_server_connect_duration_seconds": "mcp_server_connect_duration",
    "mcp_server_health_check_duration_seconds": "mcp_server_health_check_duration",
    "mcp_tool_call_duration_seconds": "mcp_tool_call_duration",
}


def _env(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def export_protocol(environ: Mapping[str, str]) -> str | None:
    """The OTLP protocol the standard variables ask metrics to be exported with, or None. Pure.

    Raises ValueError for a protocol the sidecar does not ship.
    """
    if _env(environ, "OTEL_SDK_DISABLED").lower() == "true":
        return None
    exporters = [n.strip().lower() for n in _env(environ, "OTEL_METRICS_EXPORTER").split(",") if n.strip()]
    endpoint = _env(environ, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or _env(
        environ, "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if ("otlp" not in exporters) if exporters else not endpoint:
        return None  # "none", "prometheus" (that is /metrics), or nowhere to send to
    protocol = _env(environ, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") or _env(
        environ, "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    protocol = protocol or "http/protobuf"
    if protocol not in _PROTOCOLS:
        raise ValueError(f"OTLP protocol {protocol!r} is not supported; use one of: {', '.join(_PROTOCOLS)}")
    return protocol


class MetricExport:
    """A MeterProvider exporting one `SidecarMetrics` over OTLP; `attach` it once the metrics exist."""

    def __init__(self, provider: MeterProvider, scope_version: str) -> None:
        self.provider = provider
        self._meter = provider.get_meter("mcp-sidecar", scope_version)
        self._histograms: dict[str, Any] = {}
        self._attributes: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        self._metrics: SidecarMetrics | None = None
        self._snapshot: Samples = {}
        self._served: set[str] | None = None  # families read from `_snapshot`; None: take one
        self._lock = threading.Lock()
        self.stopped = False

    def attach(self, metrics: SidecarMetrics) -> None:
        """Export `metrics`: histogram observations from now on, gauges and counters at each export."""
        self._metrics = metrics
        for name in CONVENTION_METRICS:
            self._histogram(name)  # every family exists from the first export on
        for name in _CONTRACT_HISTOGRAMS:
            self._histogram(name)
        metrics.add_listener(self.record)
        for name in metrics.contract_samples():
            self._observable(name, counter=name.endswith("_total"))

    def record(self, observation: Observation) -> None:
        """One histogram observation, as `/metrics` counted it (called in the event loop's thread)."""
        attributes = self._attributes.get(observation.attributes)
        if attributes is None:
            attributes = self._attributes[observation.attributes] = dict(observation.attributes)
        self._histogram(observation.metric).record(observation.value, attributes)

    def _histogram(self, name: str) -> Any:
        instrument = self._histograms.get(name)
        if instrument is None:
            if name in CONVENTION_METRICS:
                otel_name, description, buckets = name, CONVENTION_METRICS[name], BUCKETS
            else:
                otel_name, description, buckets = _CONTRACT_HISTOGRAMS[name], name, DURATION_BUCKETS
            instrument = self._histograms[name] = self._meter.create_histogram(
                otel_name, unit="s", description=description, explicit_bucket_boundaries_advisory=buckets
            )
        return instrument

    def _observable(self, name: str, *, counter: bool) -> None:
        otel_name, unit = name.removesuffix("_total"), ""
        if otel_name.endswith("_seconds"):
            otel_name, unit = otel_name.removesuffix("_seconds"), "s"
        create = self._meter.create_observable_counter if counter else self._meter.create_observable_gauge
        create(otel_name, callbacks=[self._callback(name)], unit=unit)

    def _callback(self, name: str) -> Callable[[CallbackOptions], Iterable[OtelObservation]]:
        from opentelemetry.metrics import Observation as OtelObservation

        def observe(options: CallbackOptions) -> Iterable[OtelObservation]:
            return [OtelObservation(value, labels) for labels, value in self._samples(name)]

        return observe

    def _samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """`name`'s samples from one snapshot shared by all the callbacks of one export.

        Each export calls every family's callback once, one after another: a family asked for
        again means a new export, which takes a new snapshot. (A snapshot kept for a time span
        instead let the last export at exit repeat numbers from before the last events.)
        """
        with self._lock:
            if self._metrics is None:
                return []
            if self._served is None or name in self._served:
                self._snapshot, self._served = self._metrics.contract_samples(), set()
            self._served.add(name)
            return self._snapshot.get(name, [])


def configure_metric_export(service_version: str) -> MetricExport | None:
    """A MeterProvider exporting over OTLP every `OTEL_METRIC_EXPORT_INTERVAL` ms, or None when
    no variable asks for one. Raises ValueError for an unsupported protocol."""
    protocol = export_protocol(os.environ)
    if protocol is None:
        return None
    # Imported only now: most runs export nothing, and grpc is slow to import.
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    from .tracing import sidecar_resource

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

        exporter: Any = Grpc()
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

        exporter = Http()
    reader = PeriodicExportingMetricReader(exporter)
    # The SDK's own exit hook would wait for an unreachable collector; ours is bounded.
    # No exemplars: no span is current where these are recorded, and collecting them costs ~10%.
    provider = MeterProvider(resource=sidecar_resource(service_version), metric_readers=[reader],
                             exemplar_filter=AlwaysOffExemplarFilter(), shutdown_on_exit=False)  # fmt: skip
    export = MetricExport(provider, service_version)
    atexit.register(shutdown_metric_export, export)
    return export


def shutdown_metric_export(export: MetricExport | None, timeout: float = SHUTDOWN_TIMEOUT) -> bool:
    """Export one last time and stop, within `timeout` s (a dead collector cannot hold the exit).

    True if it finished. Blocks the caller: call it after the event loop, or in a worker thread.
    """
    if export is None or export.stopped:
        return True
    export.stopped = True
    worker = threading.Thread(target=export.provider.shutdown, name="otel-metrics-shutdown", daemon=True)
    worker.start()
    worker.join(timeout)
    return not worker.is_alive()
