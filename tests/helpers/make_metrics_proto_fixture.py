"""Write tests/data/metrics/hikaricp-new-semconv.binpb: the JSON lines fixture as the
Collector file exporter's ``format: proto`` writes it (4-byte big-endian length, then
one serialized ExportMetricsServiceRequest per line of the JSON fixture).

usage: python tests/helpers/make_metrics_proto_fixture.py
"""

from pathlib import Path

from google.protobuf.json_format import Parse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

DATA = Path(__file__).parents[1] / "data" / "metrics"


def main() -> None:
    out = bytearray()
    for line in (DATA / "hikaricp-new-semconv.jsonl").read_text().splitlines():
        payload = Parse(line, ExportMetricsServiceRequest()).SerializeToString()
        out += len(payload).to_bytes(4, "big") + payload
    (DATA / "hikaricp-new-semconv.binpb").write_bytes(bytes(out))


if __name__ == "__main__":
    main()
