"""Real client libraries sending logs to logjet's ingest, driven by tests/tests/shippers.rs.

Runs in the venv that scripts/test.sh builds with `tool_venv shippers ...` ($TOOLS/shippers, see scripts/lib.sh).
Each subcommand sends its logs and prints one JSON object on stdout for the Rust test to check.

  shippers.py loki-handler URL           python-logging-loki (Loki JSON push, both its formats)
  shippers.py loki-protobuf URL DESC     Loki protobuf push built from the schema's descriptor set
  shippers.py otlp-sdk URL               OpenTelemetry SDK, OTLP/HTTP protobuf and JSON exporters
  shippers.py otlp-partial URL           an ExportLogsServiceRequest with one invalid record
  shippers.py es-bulk URL                the official Elasticsearch client's helpers.bulk
"""

import json
import logging
import sys
import time
import warnings

import requests


def out(obj):
    print(json.dumps(obj), flush=True)


def now_ns(seconds_ago=0.0):
    return int((time.time() - seconds_ago) * 1e9)


# --------------------------------------------------------------------------------------------
# Loki


def loki_handler(url):
    import logging_loki

    errors = []

    class Recording(logging_loki.LokiHandler):
        def handleError(self, record):  # noqa: N802 (logging's name)
            errors.append(str(sys.exc_info()[1]))

    sent = 0
    for version, app in (("1", "loki-py"), ("0", "loki-py-legacy")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            handler = Recording(
                url=f"{url}/loki/api/v1/push", tags={"application": app, "env": "test"}, version=version
            )
        log = logging.getLogger(f"shippers.{app}")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)
        log.error("payment failed for order A-17", extra={"tags": {"order_id": "A-17"}})
        log.warning("slow response from upstream")
        log.info("user logged in")
        sent += 3
        log.removeHandler(handler)
    out({"sent": sent, "errors": errors})


def loki_messages(descriptor_path):
    """Message classes built by Python's protobuf runtime from the compiled push.proto."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fds = descriptor_pb2.FileDescriptorSet()
    with open(descriptor_path, "rb") as f:
        fds.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file in fds.file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("logproto.PushRequest"))


def loki_protobuf(url, descriptor_path):
    import cramjam

    PushRequest = loki_messages(descriptor_path)

    def push(streams):
        req = PushRequest()
        for labels, entries in streams:
            s = req.streams.add()
            s.labels = labels
            for ts, line, metadata in entries:
                e = s.entries.add()
                e.timestamp.seconds = ts // 1_000_000_000
                e.timestamp.nanos = ts % 1_000_000_000
                e.line = line
                for k, v in metadata.items():
                    m = e.structuredMetadata.add()
                    m.name = k
                    m.value = v
        body = bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
        r = requests.post(
            f"{url}/loki/api/v1/push",
            data=body,
            headers={"Content-Type": "application/x-protobuf"},
            timeout=10,
        )
        return {"status": r.status_code, "body": r.text}

    ok = push(
        [
            (
                '{service_name="promtail-app", job="varlogs", level="error", filename="/var/log/app.log"}',
                [
                    (now_ns(2), "disk full on /data", {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}),
                    (now_ns(1), "retrying write", {}),
                ],
            ),
            ('{job="nginx"}', [(now_ns(1), "WARN upstream slow", {"pod": "nginx-1"})]),
        ]
    )
    # Entry 2 of stream 1 is three days old, beyond the retention: refused, the others kept.
    partial = push(
        [
            (
                '{service_name="loki-partial"}',
                [
                    (now_ns(1), "kept 1", {}),
                    (now_ns(3 * 86400), "too old", {}),
                    (now_ns(1), "kept 2", {}),
                ],
            ),
        ]
    )
    out({"ok": ok, "partial": partial})


# --------------------------------------------------------------------------------------------
# OpenTelemetry


def otlp_sdk(url):
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter as JsonExporter
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as ProtoExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("shippers")
    result = {}
    for name, exporter in (
        ("proto", ProtoExporter(endpoint=f"{url}/v1/logs")),
        ("json", JsonExporter(endpoint=f"{url}/v1/logs")),
    ):
        resource = Resource.create(
            {"service.name": f"otel-{name}", "deployment.environment": "test", "host.name": "node-7"}
        )
        provider = LoggerProvider(resource=resource)
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        logger = provider.get_logger("checkout.payments", "1.2.3")
        with tracer.start_as_current_span("charge") as span:
            ctx = span.get_span_context()
            logger.emit(
                severity_number=SeverityNumber.ERROR,
                severity_text="ERROR",
                body="payment failed for order A-17",
                attributes={"order.id": "A-17", "amount": 12.5, "retry": 2},
            )
        logger.emit(severity_number=SeverityNumber.DEBUG, body="cache miss")
        logger.emit(severity_number=SeverityNumber.WARN, body={"msg": "slow query", "ms": 950})
        # The stdlib bridge, as most applications use it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
        std = logging.getLogger(f"shippers.otel.{name}")
        std.propagate = False
        std.setLevel(logging.DEBUG)
        std.addHandler(handler)
        std.warning("disk %s almost full", "/data")
        std.removeHandler(handler)
        ok = provider.force_flush()
        provider.shutdown()
        result[name] = {
            "flushed": ok,
            "trace_id": format(ctx.trace_id, "032x"),
            "span_id": format(ctx.span_id, "016x"),
        }
    out(result)


def otlp_partial(url):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
        ExportLogsServiceResponse,
    )

    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    attr = rl.resource.attributes.add()
    attr.key = "service.name"
    attr.value.string_value = "otel-partial"
    sl = rl.scope_logs.add()
    for i, age in enumerate([1, 3 * 86400, 1]):
        lr = sl.log_records.add()
        lr.time_unix_nano = now_ns(age)
        lr.severity_number = 9
        lr.body.string_value = f"record {i + 1}"
    r = requests.post(
        f"{url}/v1/logs",
        data=req.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )
    resp = ExportLogsServiceResponse()
    resp.ParseFromString(r.content)
    out(
        {
            "status": r.status_code,
            "content_type": r.headers.get("content-type"),
            "has_partial_success": resp.HasField("partial_success"),
            "rejected": resp.partial_success.rejected_log_records,
            "error_message": resp.partial_success.error_message,
        }
    )


# --------------------------------------------------------------------------------------------
# Elasticsearch


def es_bulk(url):
    from elasticsearch import Elasticsearch, helpers

    es = Elasticsearch(url, request_timeout=10)
    info = es.info()
    ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    actions = [
        {
            "_index": "es-app-2026.11.26",
            "_id": f"doc-{i}",
            "@timestamp": ts,
            "message": f"GET /items/{i} 200",
            "log": {"level": "info"},
            "http": {"status": 200},
        }
        for i in range(5)
    ]
    actions.append(
        {
            "_op_type": "create",
            "_index": "logs-es-ecs-default",
            "@timestamp": ts,
            "message": "payment failed",
            "log.level": "error",
            "service": {"name": "es-ecs"},
            "host": {"name": "node-3"},
        }
    )
    ok, errors = helpers.bulk(es, actions)
    # One bad document (an unknown level) among good ones: per-item error, the rest kept.
    bad = [
        {"_index": "es-partial", "message": "good 1", "level": "warn"},
        {"_index": "es-partial", "message": "bad", "level": "banana"},
        {"_index": "es-partial", "message": "good 2", "level": "error"},
    ]
    pok, perrors = helpers.bulk(es, bad, raise_on_error=False)
    out(
        {
            "info": dict(info),
            "ok": ok,
            "errors": errors,
            "partial_ok": pok,
            "partial_errors": perrors,
        }
    )


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "loki-handler": loki_handler,
        "loki-protobuf": loki_protobuf,
        "otlp-sdk": otlp_sdk,
        "otlp-partial": otlp_partial,
        "es-bulk": es_bulk,
    }[cmd](*args)


if __name__ == "__main__":
    main()
