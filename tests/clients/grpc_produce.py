"""Talks to Sluice's gRPC API as a Python service would: stubs generated from the project's own
proto/sluice/v1/gateway.proto with grpcio-tools, then unary and streaming produce, plain and with
grpcio's gzip compression.

Usage: grpc_produce.py PROTO_ROOT HOST:PORT

Prints one JSON object: what each call answered (status code names, error details decoded with
grpcio-status, stream outcomes in order). Needs: pip install grpcio grpcio-tools grpcio-status.
"""

import importlib
import json
import sys
import tempfile

import grpc
from grpc_status import rpc_status
from grpc_tools import protoc
from google.rpc import error_details_pb2


def generate_stubs(proto_root, out_dir):
    """Compiles the gateway proto into importable Python modules under out_dir."""
    import grpc_tools

    well_known = grpc_tools.__path__[0] + "/_proto"
    code = protoc.main([
        "protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        "sluice/v1/gateway.proto",
    ])
    if code != 0:
        raise SystemExit(f"protoc failed with {code}")
    sys.path.insert(0, out_dir)
    return (importlib.import_module("sluice.v1.gateway_pb2"),
            importlib.import_module("sluice.v1.gateway_pb2_grpc"))


def order(order_id, qty):
    return json.dumps({"order_id": order_id, "items": [{"qty": qty}]}).encode()


def failure(error):
    """A failed call as JSON: code name, message, and the rich details Sluice attaches."""
    answer = {"code": error.code().name, "message": error.details()}
    status = rpc_status.from_call(error)
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                answer["violations"] = [
                    {"field": v.field, "description": v.description} for v in bad.field_violations
                ]
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                answer["reason"] = info.reason
                answer["metadata"] = dict(info.metadata)
    return answer


def main():
    proto_root, target = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as out_dir:
        pb, pb_grpc = generate_stubs(proto_root, out_dir)
        with grpc.insecure_channel(target) as channel:
            gateway = pb_grpc.GatewayStub(channel)
            report = {}

            def produce(name, request, compression=None):
                try:
                    accepted = gateway.Produce(request, timeout=10, compression=compression)
                    report[name] = {"code": "OK", "offset": accepted.offset,
                                    "schema_version": accepted.schema_version}
                except grpc.RpcError as error:
                    report[name] = failure(error)

            produce("valid", pb.ProduceRequest(
                station="orders", payload=order("py-1", 1), content_type="application/json",
                key=b"py-key", headers=[pb.Header(name="origin", value="python")]))
            produce("invalid", pb.ProduceRequest(
                station="orders", payload=order("py-2", 0), content_type="application/json"))
            produce("unknown_station", pb.ProduceRequest(
                station="nowhere", payload=order("py-3", 1), content_type="application/json"))

            def produce_stream(prefix, compression=None):
                requests = (
                    pb.ProduceRequest(station="orders",
                                      payload=order(f"{prefix}-{i}", 0 if i % 10 == 9 else 1),
                                      content_type="application/json")
                    for i in range(20)
                )
                stream = []
                for result in gateway.ProduceStream(requests, timeout=30, compression=compression):
                    if result.WhichOneof("outcome") == "accepted":
                        stream.append({"index": result.index, "accepted": result.accepted.offset})
                    else:
                        stream.append({"index": result.index, "rejected": result.rejected.error,
                                       "path": result.rejected.violations[0].path})
                return stream

            report["stream"] = produce_stream("py-s")
            # The same calls with their messages gzip-compressed (grpc-encoding: gzip).
            produce("gzip_valid", pb.ProduceRequest(
                station="orders", payload=order("py-gz-1", 1), content_type="application/json"),
                compression=grpc.Compression.Gzip)
            produce("gzip_invalid", pb.ProduceRequest(
                station="orders", payload=order("py-gz-2", 0), content_type="application/json"),
                compression=grpc.Compression.Gzip)
            report["gzip_stream"] = produce_stream("py-gz-s", grpc.Compression.Gzip)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
